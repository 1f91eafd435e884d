// conv2d_weight_3x3: what both 3×3 weight-gradient kernels
// (conv2d_backward_weight_3x3 and its subgroup variant) read besides the
// inputs (lib/conv2d_rows.wgsl): eight upstream gradients of a row,
// through a texture copy, zero where masked.
//
// Expects the importing shader to declare `dy` as a texture copy
// (Gpu::read_window). Imports after texels.
// Thread mapping: none (functions only). Bounds: dy8's callers keep the row
// inside dy.

// Eight consecutive values: lo = 0 .. 3, hi = 4 .. 7.
struct Eight {
    lo: vec4<real>,
    hi: vec4<real>,
}

// dy[i .. i+7] of the window (three texel fetches, shifted by i % 4), 0
// where keep_lo / keep_hi are false.
fn dy8(i: u32, keep_lo: vec4<bool>, keep_hi: vec4<bool>) -> Eight {
    let k = i >> 2u;
    let t0 = tex4_at(dy, k);
    let t1 = tex4_at(dy, k + 1u);
    let t2 = tex4_at(dy, k + 2u);
    let zero = vec4<real>(0.0);
    return Eight(select(zero, shift4(t0, t1, i & 3u), keep_lo), select(zero, shift4(t1, t2, i & 3u), keep_hi));
}
