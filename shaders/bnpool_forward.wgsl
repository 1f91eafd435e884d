// bnpool_forward: p[n, c, oy, ox] = drop(max over the 2×2 window at (2oy, 2ox) of γ[c]·(v − mean[c])·invstd[c] + β[c])
//
// The tail of a conv block in one pass: batch norm (v = z, or relu(z) with
// the conv's relu fused in), 2×2 max-pool at stride 2, and inverted dropout,
//   drop(u) = u · keep / (1 − rate),  keep = [hash(seed, step, index) / 2³² ≥ rate]
// with dropout's own hash of the pooled element's global index (the masks
// of dropout_forward). The normalised tensor and the pooled one before
// dropout are never written: per pooled output the kernel reads four z and
// writes one value, where batchnorm_forward + maxpool_forward +
// dropout_forward read and wrote every element of both.
// mean and invstd = 1/√(var + ε) come from batchnorm_stats.
// Thread mapping: one invocation per quad of four neighbouring windows of a
// pooled row: t = gid.x + gid.y · num_workgroups.x · 256 → (plane = n·C + c,
// oy, q) with q < Q = ⌈OW/4⌉; it reads z rows 2oy and 2oy + 1 at columns
// 8q .. 8q + 7 (three texel fetches per row, four elements per texel) and
// writes p[.., oy, 4q .. 4q + 3].
// Bounds: invocations with t ≥ n·C·OH·Q return; windows 4q + j ≥ OW are
// not written (the columns they would read may belong to the next row).
// Windows: z is a texture copy of the batch window (Gpu::read_window), z_base
// the offset of its first element in the copy; p_base is the first element
// of the bound p window, first the global index of its first element (the
// dropout hash's input). In f64 the host binds buffer windows and
// shaders::instantiate makes the textures storage arrays.
// Ties: the value of a window's maximum does not depend on which element
// holds it; bnpool_backward_* route the gradient to the first maximum in
// row-major scan order, as maxpool does.
// import texels, dropout_mask, bnpool

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values in the channel window

@group(0) @binding(0) var<uniform> params: BnPoolParams;
@group(0) @binding(1) var z: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read_write> p: array<real>;

// The per-channel values, which the host gathers into one 64 KiB uniform
// window (bnpool.rs, channel_window): mean at ch, invstd = 1/√(var + ε) at
// C + ch, γ at 2C + ch, β at 3C + ch. Uniform, not storage: on lavapipe a
// storage load at a per-invocation index is a loop over the SIMD lanes
// through memory, far costlier than a uniform load (docs/performance.md).
@group(0) @binding(2) var<uniform> chan: array<vec4<real>, WINDOW / 4u>;

// dropout_forward's mask for the pooled element with global index `index`.
fn keep(index: u32) -> bool {
    return dropout_keep(index, params.seed, params.step, params.rate);
}

@compute @workgroup_size(256)
fn bnpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let quads = (params.ow + 3u) / 4u;
    if (t >= params.n * params.c * params.oh * quads) {
        return;
    }
    let q = t % quads;
    let oy = (t / quads) % params.oh;
    let plane = t / (quads * params.oh);
    let ch = plane % params.c;
    let c = params.c;
    let scale = chan_at(2u * c + ch) * chan_at(c + ch);
    let shift = chan_at(3u * c + ch) - chan_at(ch) * scale;
    let e = params.z_base + (plane * params.h + 2u * oy) * params.w + 8u * q;
    let top = z8(e);
    let bottom = z8(e + params.w);
    // the normalised values, then the max of each column pair, then of each window
    let m_lo = max(input4(top.lo) * scale + shift, input4(bottom.lo) * scale + shift);
    let m_hi = max(input4(top.hi) * scale + shift, input4(bottom.hi) * scale + shift);
    let pooled = vec4<real>(max(m_lo.x, m_lo.y), max(m_lo.z, m_lo.w), max(m_hi.x, m_hi.y), max(m_hi.z, m_hi.w));
    let o = (plane * params.oh + oy) * params.ow + 4u * q;
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (4u * q + j < params.ow) {
            var v = pooled[j];
            if (params.dropout == 1u) {
                v = select(real(0.0), v * real(params.scale), keep(params.first + o + j));
            }
            p[params.p_base + o + j] = v;
        }
    }
}
