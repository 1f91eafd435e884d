// batchnorm_backward_partials: per (chunk, channel): Σ dy and Σ dy · x̂ over the chunk
//
//   forward:  x̂ = (x − mean)·invstd,  y = γ·x̂ + β
//   backward needs, per channel, Σ dy (= dβ) and Σ dy·x̂ (= dγ); both also enter dx.
// x̂ is recomputed from x and the saved statistics (nothing else was stored).
// Chunks as in batchnorm_partials; reduce_partials sums them into sums[2, C]
// (row 0: Σ dy, row 1: Σ dy·x̂).
// Thread mapping: invocation t = gid.x + gid.y · num_workgroups.x · 64 owns
// channel t % C of chunk t / C; writes partial[((chunk_offset + chunk)·2 + {0, 1})·C + ch].
// Bounds: invocations past the last chunk return.
// Windows: x_base / y_base are the first elements of the x and dy windows.
// Fused relu (params.relu_input = 1): x holds z and x̂ uses relu(z).
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
@group(0) @binding(3) var<storage, read> stats: array<real>;
@group(0) @binding(4) var<storage, read_write> partial: array<real>;

@compute @workgroup_size(64)
fn batchnorm_backward_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let ch = t % params.c;
    let k = t / params.c;
    let m = params.n * params.plane;
    if (k * params.chunk >= m) {
        return;
    }
    let end = min((k + 1u) * params.chunk, m);
    let mean = stats[ch];
    let invstd = stats[params.c + ch];
    var s_dy = real(0.0);
    var s_dyx = real(0.0);
    for (var e = k * params.chunk; e < end; e = e + 1u) {
        let off = ((e / params.plane) * params.c + ch) * params.plane + e % params.plane;
        let g = tex_at(dy, params.y_base + off);
        s_dy = s_dy + g;
        s_dyx = s_dyx + g * (input_value(tex_at(x, params.x_base + off)) - mean) * invstd;
    }
    let o = (params.chunk_offset + k) * 2u;
    partial[o * params.c + ch] = s_dy;
    partial[(o + 1u) * params.c + ch] = s_dyx;
}
