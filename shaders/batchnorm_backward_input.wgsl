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
// Thread mapping: one invocation per strip of 8 consecutive elements of one
// (sample, channel) plane, as in batchnorm_forward: t → row = t / S
// (S = ⌈plane/8⌉), channel row % C, elements 8·(t % S) .. +8 of the row. The
// channel's constants are folded once per strip:
//   dx += k·dy − k·Σdy/M − k·Σ(dy·x̂)/M·invstd·(x − mean),  k = γ·invstd
// so an element costs a load of dy and x and the update of dx.
// Bounds: invocations with t ≥ n·C·S return; elements past the plane's end
// are skipped.
// Windows: x_base, y_base and dx_base are the first elements of the x, dy
// and dx windows.
// Gradients accumulate (+=).
// Fused relu (params.relu_input = 1): x holds z, the pre-activation of the
// layer before, and the batch norm's input is relu(z); x̂ uses relu(z) and the
// gradient goes straight to z: dz += dx·[z > 0] (elements with z ≤ 0 are not
// touched). This replaces relu_forward and relu_backward.
// Inputs through textures: x and dy are read with textureLoad from texture
// copies of their windows (Gpu::read_window, x_base = y_base = 0); in f64,
// where textures hold no f64, the host binds the buffer windows and
// shaders::instantiate makes them storage arrays (tex_at(x, i) → x[i]). On
// lavapipe a texel fetch is a gather, a storage load a loop over the SIMD
// lanes: the batch-norm backward measured faster, copies included
// (benches/layers.rs, docs/kernels/batchnorm.md).
// import texels, batchnorm

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, unbiased: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var dy: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read> gamma: array<real>;
@group(0) @binding(4) var<storage, read> stats: array<real>;
@group(0) @binding(5) var<storage, read> sums: array<real>;
@group(0) @binding(6) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn batchnorm_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let strips = (params.plane + 7u) / 8u;
    if (t >= params.n * params.c * strips) {
        return;
    }
    let row = t / strips;
    let ch = row % params.c;
    let mean = stats[ch];
    let invstd = stats[params.c + ch];
    let k = gamma[ch] * invstd;
    // training: dx += k·dy + k_0 + k_x·(x − mean); inference: dx += k·dy
    var k0 = real(0.0);
    var kx = real(0.0);
    if (params.training == 1u) {
        let m = real(params.count);
        k0 = -k * sums[ch] / m;
        kx = -k * sums[params.c + ch] / m * invstd;
    }
    let e0 = (t % strips) * 8u;
    let e_end = min(e0 + 8u, params.plane);
    let first = row * params.plane;
    for (var e = e0; e < e_end; e = e + 1u) {
        let i = params.dx_base + first + e;
        let v = tex_at(x, params.x_base + first + e);
        let d = k * tex_at(dy, params.y_base + first + e) + k0 + kx * (input_value(v) - mean);
        // fused relu: dz = dx · [z > 0] (0 at the kink, as relu_backward)
        if (params.relu_input == 0u || v > real(0.0)) {
            dx[i] = dx[i] + d;
        }
    }
}
