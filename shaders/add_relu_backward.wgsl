// add_relu_backward: da += dy · [y > 0], db += dy · [y > 0]
//
//   forward:  y = max(a + b, 0)
//   backward: both inputs receive relu's gradient, read once for the two
//             (two relu_backward passes would read y and dy twice).
// Uses the saved output y (y > 0 ⇔ a + b > 0); at the kink the gradient is
// 0, as relu_backward's. da and db are distinct buffers (the host runs
// relu_backward twice when both inputs are one tensor).
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: as add_relu_forward. Gradients accumulate (+=).

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
@group(0) @binding(3) var<storage, read_write> da: array<real>;
@group(0) @binding(4) var<storage, read_write> db: array<real>;

@compute @workgroup_size(256)
fn add_relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    let g = select(real(0.0), dy[k], y[k] > real(0.0));
    da[k] = da[k] + g;
    db[k] = db[k] + g;
}
