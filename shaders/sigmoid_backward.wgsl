// sigmoid_backward: dx += dy · y · (1 − y)
//
//   forward:  y = σ(x)
//   backward: dσ/dx = σ(x)(1 − σ(x)), so dx += dy · y · (1 − y), from the saved output y.
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it. Gradients accumulate (+=).

alias real = f32;

struct ElementwiseParams {
    n: u32,     // elements in this range
    base: u32,  // first element of the range in the bound window
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ElementwiseParams;
@group(0) @binding(1) var<storage, read> y: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn sigmoid_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    let s = y[k];
    dx[k] = dx[k] + dy[k] * s * (real(1.0) - s);
}
