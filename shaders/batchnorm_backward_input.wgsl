// batchnorm_backward_input: dx += γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)   (training)
//                           dx += γ·invstd·dy                             (inference)
//
// Training: mean and var depend on every x of the channel. With
// x̂ = (x − mean)·invstd and y = γx̂ + β over M values:
//   ∂L/∂x̂ = γ·dy;  ∂L/∂var = Σ ∂L/∂x̂·(x − mean)·(−½)·invstd³;  ∂L/∂mean = −invstd·Σ ∂L/∂x̂
//   dx = invstd·∂L/∂x̂ + ∂L/∂var·2(x − mean)/M + ∂L/∂mean/M
//      = γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)          (docs/kernels/batchnorm.md derives it)
// sums[0..C] = Σ dy, sums[C..2C] = Σ dy·x̂ come from batchnorm_backward_partials.
// Inference: mean and invstd are constants (moving statistics).
// Thread mapping: one invocation per element of the bound window, channel (r / plane) % C.
// Bounds: invocations with r ≥ n·C·plane return.
// Windows: x_base is the first element of the x / dx windows, y_base of dy's.
// Gradients accumulate (+=).

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read> gamma: array<real>;
@group(0) @binding(4) var<storage, read> stats: array<real>;
@group(0) @binding(5) var<storage, read> sums: array<real>;
@group(0) @binding(6) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= params.n * params.c * params.plane) {
        return;
    }
    let ch = (r / params.plane) % params.c;
    let invstd = stats[params.c + ch];
    let g = dy[params.y_base + r];
    var d = g;
    if (params.training == 1u) {
        let m = real(params.count);
        let xhat = (x[params.x_base + r] - stats[ch]) * invstd;
        d = g - sums[ch] / m - xhat * sums[params.c + ch] / m;
    }
    dx[params.x_base + r] = dx[params.x_base + r] + gamma[ch] * invstd * d;
}
