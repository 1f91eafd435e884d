// bnpool: what the three bnpool kernels (batch norm → 2×2 max-pool →
// dropout, fused) share: their uniform struct, the per-channel window, and
// eight-element reads of z.
//
// Expects the importing shader to declare `params: BnPoolParams` (binding
// 0), `z` (a texture copy of the conv output) and `chan` (the uniform
// channel window: mean at ch, invstd at C + ch, γ at 2C + ch, β at 3C + ch,
// then each kernel's own values). Imports after texels.
// Thread mapping: none (functions only). Bounds: none; callers keep their
// reads inside the copies.

struct BnPoolParams {
    n: u32, c: u32, h: u32, w: u32,
    oh: u32, ow: u32, z_base: u32, p_base: u32,
    relu_input: u32, training: u32, count: u32, chunk: u32,
    chunk_offset: u32, dz_base: u32, first: u32, dropout: u32,
    seed: u32, step: u32, rate: f32, scale: f32,
    _pad0: u32, _pad1: u32, _pad2: u32, _pad3: u32,
}

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
