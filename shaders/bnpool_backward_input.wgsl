// bnpool_backward_input: dz += [z > 0]·γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M), dy = g at each window's first maximum, else 0
//
// The input gradient of bnpool (batch norm → 2×2 max-pool → dropout):
//   g  = dp · keep / (1 − rate)   per window (dropout's mask; dp without dropout)
//   dy = g at the window's first maximum of y (row-major scan order), 0 at its
//        other three elements and at a last odd row or column (in no window)
//   dx = γ·invstd·(dy − Σdy/M − x̂·Σ(dy·x̂)/M)   batch norm, training
//        (docs/kernels/batchnorm.md derives it; inference: γ·invstd·dy)
//   dz = dx·[z > 0] with the conv's relu fused in (params.relu_input = 1), else dx
// Σ dy and Σ dy·x̂ per channel come from bnpool_backward_partials.
// The gradient of the normalised tensor and of the pooled one are never
// written: the maximum is found again from z and the saved statistics.
// Thread mapping: one invocation per block of two z rows (2r, 2r + 1) and
// eight columns (8s .. 8s + 7) of one (sample, channel) plane:
// t = gid.x + gid.y · num_workgroups.x · 256 → (plane, r, s), r < ⌈H/2⌉,
// s < ⌈W/8⌉. The block holds the windows 4s .. 4s + 3 of pooled row r; it
// reads the 16 z (six texel fetches), dp of its windows (two) and updates
// its 16 dz. Channel constants are folded once per block:
//   dz += k·dy + k0 + kx·(v − mean),  k = γ·invstd, k0 = −k·Σdy/M,
//         kx = −k·Σ(dy·x̂)/M·invstd.
// Bounds: invocations with t ≥ n·C·⌈H/2⌉·⌈W/8⌉ return; rows ≥ H and columns
// ≥ W are not written; a block in the last row of an odd H has no windows.
// Windows: z and dp are texture copies of the batch window
// (Gpu::read_window), z_base and p_base their first elements in the copies;
// dz_base is the first element of the bound dz window; first the global
// index of the window's first pooled element (dropout's hash). In f64 the
// host binds buffer windows and shaders::instantiate makes the textures
// storage arrays.
// Gradients accumulate (+=), or with WRITE (a pipeline constant: the tape's fresh
// buffer, GradWrite::Write) every element of dz is written (=) without being
// read: 16 storage loads fewer per block, and no zeroing of dz before.
// import texels

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values in the channel window
// Write dz (true) or add into it (false): fixed when the pipeline is
// compiled (gpu::Constants, bnpool.rs), so that the writing kernel carries
// no masked-off loads of dz — on lavapipe a branch on a uniform runs both
// sides under a lane mask (docs/performance.md).
override WRITE: bool = false;

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
@group(0) @binding(4) var<storage, read_write> dz: array<real>;

// The per-channel values, which the host gathers into one 64 KiB uniform
// window (bnpool.rs, channel_window): mean at ch, invstd = 1/√(var + ε) at
// C + ch, γ at 2C + ch, β at 3C + ch,
// Σdy at 4C + ch and Σ(dy·x̂) at 5C + ch (bnpool_backward_partials). Uniform, not storage: on lavapipe a
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

// The folded constants of dz = k·dy + k0 + kx·(v − mean).
struct Fold {
    k: real,
    k0: real,
    kx: real,
    mean: real,
}

// dz[i + j] += k·dy[j] + k0 + kx·(v[j] − mean) for the row's columns
// col .. col + 7 inside the plane (and z > 0 with the relu fused in); with
// WRITE (a fresh, unzeroed dz: GradWrite::Write) dz[i + j] = that,
// or 0 where z ≤ 0, without reading dz.
fn update_row(i: u32, col: u32, zv: Eight, dy: Eight, f: Fold) {
    let d_lo = f.k * dy.lo + f.k0 + f.kx * (input4(zv.lo) - f.mean);
    let d_hi = f.k * dy.hi + f.k0 + f.kx * (input4(zv.hi) - f.mean);
    let relu = params.relu_input == 1u;
    if (WRITE) {
        let zero = vec4<real>(0.0);
        let w_lo = select(d_lo, zero, vec4<bool>(relu) & (zv.lo <= zero));
        let w_hi = select(d_hi, zero, vec4<bool>(relu) & (zv.hi <= zero));
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col + j < params.w) {
                dz[i + j] = w_lo[j];
            }
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            if (col + 4u + j < params.w) {
                dz[i + 4u + j] = w_hi[j];
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col + j < params.w && (!relu || zv.lo[j] > real(0.0))) {
            dz[i + j] = dz[i + j] + d_lo[j];
        }
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (col + 4u + j < params.w && (!relu || zv.hi[j] > real(0.0))) {
            dz[i + 4u + j] = dz[i + 4u + j] + d_hi[j];
        }
    }
}

@compute @workgroup_size(256)
fn bnpool_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let strips = (params.w + 7u) / 8u;
    let pairs = (params.h + 1u) / 2u;
    if (t >= params.n * params.c * pairs * strips) {
        return;
    }
    let s = t % strips;
    let r = (t / strips) % pairs;
    let plane = t / (strips * pairs);
    let ch = plane % params.c;
    let nrm = norm(ch);
    var f = Fold(nrm.scale, real(0.0), real(0.0), nrm.mean);
    if (params.training == 1u) {
        let m = real(params.count);
        f.k0 = -f.k * chan_at(4u * params.c + ch) / m;
        f.kx = -f.k * chan_at(5u * params.c + ch) / m * nrm.invstd;
    }
    let offset = (plane * params.h + 2u * r) * params.w + 8u * s;
    let top = z8(params.z_base + offset);
    let bottom = z8(params.z_base + offset + params.w);
    let zero = vec4<real>(0.0);
    var dy_top = Eight(zero, zero);
    var dy_bottom = Eight(zero, zero);
    if (r < params.oh) {
        let win = winners(top, bottom, nrm);
        let g = window_grads(plane, r, s);
        // each window's g at its winning corner
        let g0 = select(zero, g, win.arg == vec4<u32>(0u));
        let g1 = select(zero, g, win.arg == vec4<u32>(1u));
        let g2 = select(zero, g, win.arg == vec4<u32>(2u));
        let g3 = select(zero, g, win.arg == vec4<u32>(3u));
        dy_top = Eight(vec4<real>(g0.x, g1.x, g0.y, g1.y), vec4<real>(g0.z, g1.z, g0.w, g1.w));
        dy_bottom = Eight(vec4<real>(g2.x, g3.x, g2.y, g3.y), vec4<real>(g2.z, g3.z, g2.w, g3.w));
    }
    update_row(params.dz_base + offset, 8u * s, top, dy_top, f);
    if (2u * r + 1u < params.h) {
        update_row(params.dz_base + offset + params.w, 8u * s, bottom, dy_bottom, f);
    }
}
