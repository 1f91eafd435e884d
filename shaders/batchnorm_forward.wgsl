// batchnorm_forward: y = γ[ch] · (x − mean[ch]) · invstd[ch] + β[ch]
//
// mean and invstd = 1/√(var + ε) come from batchnorm_stats: the batch's in
// training, the moving statistics in inference. x, y: [N, C, plane].
// Thread mapping: one invocation per element of the bound window,
// r = gid.x + gid.y · num_workgroups.x · 256; its channel is (r / plane) % C
// (windows start on a sample boundary).
// Bounds: invocations with r ≥ n·C·plane return.
// Windows: x_base / y_base are the first elements of the x and y windows.

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> gamma: array<real>;
@group(0) @binding(3) var<storage, read> beta: array<real>;
@group(0) @binding(4) var<storage, read> stats: array<real>;
@group(0) @binding(5) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= params.n * params.c * params.plane) {
        return;
    }
    let ch = (r / params.plane) % params.c;
    let xhat = (x[params.x_base + r] - stats[ch]) * stats[params.c + ch];
    y[params.y_base + r] = gamma[ch] * xhat + beta[ch];
}
