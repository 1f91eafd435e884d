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
// import texels, dropout_mask, bnpool, bnpool_backward

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values in the channel window
// Write dz (true) or add into it (false): fixed when the pipeline is
// compiled (gpu::Constants, bnpool.rs), so that the writing kernel carries
// no masked-off loads of dz — on lavapipe a branch on a uniform runs both
// sides under a lane mask (docs/performance.md).
override WRITE: bool = false;

@group(0) @binding(0) var<uniform> params: BnPoolParams;
@group(0) @binding(1) var z: texture_2d_array<f32>;
@group(0) @binding(2) var dp: texture_2d_array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<real>;

// The per-channel values, which the host gathers into one 64 KiB uniform
// window (bnpool.rs, channel_window): mean at ch, invstd = 1/√(var + ε) at
// C + ch, γ at 2C + ch, β at 3C + ch,
// Σdy at 4C + ch and Σ(dy·x̂) at 5C + ch (bnpool_backward_partials). Uniform, not storage: on lavapipe a
// storage load at a per-invocation index is a loop over the SIMD lanes
// through memory, far costlier than a uniform load (docs/performance.md).
@group(0) @binding(3) var<uniform> chan: array<vec4<real>, WINDOW / 4u>;

// dropout_forward's mask for the pooled element with global index `index`.
fn keep(index: u32) -> bool {
    return dropout_keep(index, params.seed, params.step, params.rate);
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
