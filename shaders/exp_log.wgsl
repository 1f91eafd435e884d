// exp_log: y_i = exp(x_i) (mode 0) or y_i = log(x_i) (mode 1)
//
// The transcendental functions the ops use (sigmoid: exp, bce: log), on
// their own, so that a test can compare them element by element with Rust's
// f64::exp and f64::ln. In f32 these are WGSL's built-ins; instantiated in
// f64 they become exp_f64 / log_f64 from shaders/lib/f64_math.wgsl (the
// built-ins return garbage for f64 on Vulkan; GUIDE §3).
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: x and y are bound at the same aligned offset; `base` is the
// range's first element counted from it.

alias real = f32;

struct ExpLogParams {
    n: u32,     // elements in this range
    base: u32,  // first element of the range in the bound window
    mode: u32,  // 0: exp, 1: log
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ExpLogParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn exp_log(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let k = params.base + i;
    if (params.mode == 0u) {
        y[k] = exp(x[k]);
    } else {
        y[k] = log(x[k]);
    }
}
