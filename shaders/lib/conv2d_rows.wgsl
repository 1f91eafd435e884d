// conv2d_rows: twelve consecutive inputs of one row of x, the read every
// 3×3 stride-1 kernel makes (conv2d_forward_3x3 for eight output pixels of
// a row, the two 3×3 weight-gradient kernels for eight pixels' taps).
//
// The row starts anywhere inside a texel: element e is component e % 4 of
// texel e / 4, so four fetches from texel ⌊e/4⌋ cover the twelve, and
// shift4 moves them by e % 4. Elements before the tensor (e < 0) or past
// its end are padding, masked like every tap outside the input.
//
// Expects the importing shader to declare `params` with `h` and `w`, and
// `x` as a texture copy (Gpu::read_window). Imports after texels.
// Thread mapping: none (functions only). Bounds: input12 returns 0 for
// taps outside the input.

// Twelve consecutive values: lo = 0 .. 3, mid = 4 .. 7, hi = 8 .. 11.
struct Twelve {
    lo: vec4<real>,
    mid: vec4<real>,
    hi: vec4<real>,
}

// x[plane + iy·W + ix + j] for j = 0 .. 11, 0 in the padding (four texel
// fetches; element e is component e % 4 of texel e / 4).
fn input12(plane: u32, iy: i32, ix: i32) -> Twelve {
    let h = i32(params.h);
    let w = i32(params.w);
    let e = i32(plane) + clamp(iy, 0, h - 1) * w + ix;
    let k = e >> 2u; // ⌊e / 4⌋ (arithmetic shift)
    let sh = u32(e - 4 * k);
    let t0 = tex4_at(x, u32(max(k, 0)));
    let t1 = tex4_at(x, u32(max(k + 1, 0)));
    let t2 = tex4_at(x, u32(max(k + 2, 0)));
    let t3 = tex4_at(x, u32(max(k + 3, 0)));
    let cols = vec4<i32>(ix) + vec4<i32>(0, 1, 2, 3);
    let row = vec4<bool>(iy >= 0 && iy < h);
    let in_lo = row & (cols >= vec4<i32>(0)) & (cols < vec4<i32>(w));
    let in_mid = row & (cols >= vec4<i32>(-4)) & (cols < vec4<i32>(w - 4));
    let in_hi = row & (cols >= vec4<i32>(-8)) & (cols < vec4<i32>(w - 8));
    let zero = vec4<real>(0.0);
    return Twelve(
        select(zero, shift4(t0, t1, sh), in_lo),
        select(zero, shift4(t1, t2, sh), in_mid),
        select(zero, shift4(t2, t3, sh), in_hi),
    );
}
