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
// import texels

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values in the channel window

struct BnPoolParams {
    n: u32, c: u32, h: u32, w: u32,
    oh: u32, ow: u32, z_base: u32, p_base: u32,
    relu_input: u32, training: u32, count: u32, chunk: u32,
    chunk_offset: u32, dz_base: u32, first: u32, dropout: u32,
    seed: u32, step: u32, rate: f32, scale: f32,
    _pad0: u32, _pad1: u32, _pad2: u32, _pad3: u32,
}

@group(0) @binding(0) var<uniform> params: BnPoolParams;
@group(0) @binding(1) var z: texture_2d_array<f32>;
@group(0) @binding(2) var dp: texture_2d_array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<real>;

// The per-channel values, which the host gathers into one 64 KiB uniform
// window (bnpool.rs, channel_window): mean at ch, invstd = 1/√(var + ε) at
// C + ch, γ at 2C + ch, β at 3C + ch. Uniform, not storage: on lavapipe a
// storage load at a per-invocation index is a loop over the SIMD lanes
// through memory, about 10× a uniform load (docs/performance.md).
@group(0) @binding(3) var<uniform> chan: array<vec4<real>, WINDOW / 4u>;

fn chan_at(i: u32) -> real {
    return chan[i >> 2u][i & 3u];
}

// Eight consecutive values: lo = 0 .. 3, hi = 4 .. 7.
struct Eight {
    lo: vec4<real>,
    hi: vec4<real>,
}

// z[e .. e + 7] of the copy: three texel fetches, shifted by e % 4.
fn z8(e: u32) -> Eight {
    let k = e >> 2u;
    let t0 = tex4_at(z, k);
    let t1 = tex4_at(z, k + 1u);
    let t2 = tex4_at(z, k + 2u);
    return Eight(shift4(t0, t1, e & 3u), shift4(t1, t2, e & 3u));
}

// The batch norm's input: z itself, or relu(z) when params.relu_input = 1.
fn input4(v: vec4<real>) -> vec4<real> {
    return select(v, max(v, vec4<real>(0.0)), params.relu_input == 1u);
}

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// dropout_forward's mask for the pooled element with global index `index`.
fn keep(index: u32) -> bool {
    let h = pcg_hash(index ^ pcg_hash(params.seed ^ pcg_hash(params.step)));
    return f32(h) * 2.3283064365386963e-10 >= params.rate; // h / 2^32
}

// The four windows of a quad: which corner holds each window's first
// maximum of y (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right: scan
// order) and that element's x̂.
struct Winners {
    arg: vec4<u32>,
    xhat: vec4<real>,
}

// A channel's batch norm: y = v·scale + shift, x̂ = (v − mean)·invstd.
struct Norm {
    mean: real,
    invstd: real,
    scale: real,
    shift: real,
}

fn norm(ch: u32) -> Norm {
    let c = params.c;
    let mean = chan_at(ch);
    let invstd = chan_at(c + ch);
    let scale = chan_at(2u * c + ch) * invstd;
    return Norm(mean, invstd, scale, chan_at(3u * c + ch) - mean * scale);
}

fn winners(top: Eight, bottom: Eight, nrm: Norm) -> Winners {
    let scale = nrm.scale;
    let shift = nrm.shift;
    let t_lo = input4(top.lo);
    let t_hi = input4(top.hi);
    let b_lo = input4(bottom.lo);
    let b_hi = input4(bottom.hi);
    // corner k of windows 0 .. 3
    let v1 = vec4<real>(t_lo.y, t_lo.w, t_hi.y, t_hi.w);
    let v2 = vec4<real>(b_lo.x, b_lo.z, b_hi.x, b_hi.z);
    let v3 = vec4<real>(b_lo.y, b_lo.w, b_hi.y, b_hi.w);
    var v = vec4<real>(t_lo.x, t_lo.z, t_hi.x, t_hi.z);
    var best = v * scale + shift;
    var arg = vec4<u32>(0u);
    let y1 = v1 * scale + shift;
    let w1 = y1 > best;
    best = select(best, y1, w1);
    arg = select(arg, vec4<u32>(1u), w1);
    v = select(v, v1, w1);
    let y2 = v2 * scale + shift;
    let w2 = y2 > best;
    best = select(best, y2, w2);
    arg = select(arg, vec4<u32>(2u), w2);
    v = select(v, v2, w2);
    let y3 = v3 * scale + shift;
    let w3 = y3 > best;
    arg = select(arg, vec4<u32>(3u), w3);
    v = select(v, v3, w3);
    return Winners(arg, (v - nrm.mean) * nrm.invstd);
}

// g of windows 4q .. 4q + 3 of pooled row oy: dp through dropout's mask,
// 0 for windows past the row's end.
fn window_grads(plane: u32, oy: u32, q: u32) -> vec4<real> {
    let o = (plane * params.oh + oy) * params.ow + 4u * q;
    let i = params.p_base + o;
    var g = shift4(tex4_at(dp, i >> 2u), tex4_at(dp, (i >> 2u) + 1u), i & 3u);
    let cols = vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u);
    g = select(vec4<real>(0.0), g, cols < vec4<u32>(params.ow));
    if (params.dropout == 1u) {
        let f = params.first + o;
        let kept = vec4<bool>(keep(f), keep(f + 1u), keep(f + 2u), keep(f + 3u));
        g = select(vec4<real>(0.0), g * real(params.scale), kept);
    }
    return g;
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
