// sigmoid_forward: y = 1 / (1 + exp(-x))
//
// Numerics: exp is only ever taken of a non-positive number, so it cannot
// overflow: x ≥ 0 → 1 / (1 + e^(−x)); x < 0 → e^x / (1 + e^x).
// Saturates to exactly 0 or 1 for |x| ≳ 17 (f32); binary_cross_entropy clips.
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it.

alias real = f32;

struct ElementwiseParams {
    n: u32,     // elements in this range
    base: u32,  // first element of the range in the bound window
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    let v = x[k];
    let e = exp(-abs(v));
    let one = real(1.0);
    y[k] = select(e / (one + e), one / (one + e), v >= real(0.0));
}
