// bnpool_backward_partials: per (chunk, channel): Σ dy and Σ dy·x̂ of the batch norm, from the pooled gradient
//
//   forward (bnpool_forward): y = γ·x̂ + β, x̂ = (v − mean)·invstd, v = z or relu(z);
//             p = drop(max over each 2×2 window of y)
//   dy, the gradient of y, is zero except at each window's first maximum
//   (row-major scan order, maxpool's rule), which receives
//             g = dp · keep / (1 − rate)   (dropout's mask; g = dp without dropout).
// So the batch norm's per-channel sums Σ dy (= dβ) and Σ dy·x̂ (= dγ), which
// also enter dz (bnpool_backward_input), run over windows instead of
// elements: Σ g and Σ g·x̂[argmax]. The maximum is found again from z and
// the saved statistics: nothing of the forward was stored but z.
// Chunks: the quads of a channel (as in bnpool_forward: four neighbouring
// windows of a pooled row) over all samples are cut into chunks of
// params.chunk quads; reduce_partials sums the chunks into sums[2, C].
// Thread mapping: invocation t = gid.x + gid.y · num_workgroups.x · 64 owns
// channel t % C of chunk t / C; per quad it reads z rows 2oy and 2oy + 1 at
// columns 8q .. 8q + 7 (three texel fetches per row) and dp[.., oy, 4q .. 4q + 3]
// (two); writes partial[((chunk_offset + chunk)·2 + {0, 1})·C + ch].
// Bounds: invocations past the last chunk return; windows 4q + j ≥ OW count 0.
// Windows: z and dp are texture copies of the batch window (Gpu::read_window),
// z_base and p_base the offsets of their first elements in the copies; first
// is the global index of the window's first pooled element (dropout's hash).
// In f64 the host binds buffer windows and shaders::instantiate makes the
// textures storage arrays.
// import texels, dropout_mask, bnpool, bnpool_backward

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values in the channel window

@group(0) @binding(0) var<uniform> params: BnPoolParams;
@group(0) @binding(1) var z: texture_2d_array<f32>;
@group(0) @binding(2) var dp: texture_2d_array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<real>;

// The per-channel values, which the host gathers into one 64 KiB uniform
// window (bnpool.rs, channel_window): mean at ch, invstd = 1/√(var + ε) at
// C + ch, γ at 2C + ch, β at 3C + ch. Uniform, not storage: on lavapipe a
// storage load at a per-invocation index is a loop over the SIMD lanes
// through memory, far costlier than a uniform load (docs/performance.md).
@group(0) @binding(3) var<uniform> chan: array<vec4<real>, WINDOW / 4u>;

// dropout_forward's mask for the pooled element with global index `index`.
fn keep(index: u32) -> bool {
    return dropout_keep(index, params.seed, params.step, params.rate);
}

@compute @workgroup_size(64)
fn bnpool_backward_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let ch = t % params.c;
    let k = t / params.c;
    let quads = (params.ow + 3u) / 4u;
    let per_plane = params.oh * quads;
    let m = params.n * per_plane;
    if (k * params.chunk >= m) {
        return;
    }
    let end = min((k + 1u) * params.chunk, m);
    let nrm = norm(ch);
    var s_dy = vec4<real>(0.0);
    var s_dyx = vec4<real>(0.0);
    for (var u = k * params.chunk; u < end; u = u + 1u) {
        let plane = (u / per_plane) * params.c + ch;
        let oy = (u % per_plane) / quads;
        let q = u % quads;
        let e = params.z_base + (plane * params.h + 2u * oy) * params.w + 8u * q;
        let win = winners(z8(e), z8(e + params.w), nrm);
        let g = window_grads(plane, oy, q);
        s_dy = s_dy + g;
        s_dyx = s_dyx + g * win.xhat;
    }
    let o = (params.chunk_offset + k) * 2u;
    partial[o * params.c + ch] = s_dy.x + s_dy.y + s_dy.z + s_dy.w;
    partial[(o + 1u) * params.c + ch] = s_dyx.x + s_dyx.y + s_dyx.z + s_dyx.w;
}
