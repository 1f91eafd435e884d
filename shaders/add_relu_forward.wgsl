// add_relu_forward: y = max(a + b, 0)     (a residual block's end: the block's output plus its shortcut, then relu)
//
// One pass instead of two (an add writing a + b, a relu reading it back):
// torchvision's `out += identity; out = relu(out)`.
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
@group(0) @binding(1) var<storage, read> a: array<real>;
@group(0) @binding(2) var<storage, read> b: array<real>;
@group(0) @binding(3) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn add_relu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    y[k] = max(a[k] + b[k], real(0.0));
}
