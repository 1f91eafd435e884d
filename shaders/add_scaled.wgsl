// add_scaled: y += alpha · x        (running sums kept on the GPU, e.g. an epoch's loss)
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it.

alias real = f32;

struct AddScaledParams {
    n: u32,
    alpha: f32,
    base: u32,
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: AddScaledParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn add_scaled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    y[k] = y[k] + real(params.alpha) * x[k];
}
