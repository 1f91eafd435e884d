// maxpool_window: what the three maxpool kernels share: their uniform
// struct and the scan that finds a window's first maximum.
//
// Expects the importing shader to declare `params: PoolParams` (binding 0)
// and `x` (the input window, a storage array).
// Thread mapping: none (functions only). Bounds: taps in the padding
// (PyTorch's `padding=p`: rows above and below, columns left and right)
// are skipped, so padding never wins the max; a window always holds at
// least one input element because the host keeps the padding below the
// window size.

struct PoolParams {
    n: u32, c: u32, h: u32, w: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    oh: u32, ow: u32, x_base: u32, y_base: u32,
    ph: u32, pw: u32, _pad0: u32, _pad1: u32,
}

// The index in x of the first maximum of output (oy, ox) of `plane`
// (n·C + c), scanning rows then columns: the tie rule of the forward, the
// backward and the CPU reference. The first tap inside the input is the
// window's top-left one clamped into the input.
fn window_argmax(plane: u32, oy: u32, ox: u32) -> u32 {
    let y0 = i32(oy * params.sh) - i32(params.ph);
    let x0 = i32(ox * params.sw) - i32(params.pw);
    let rows = params.x_base + plane * params.h * params.w;
    var arg = rows + u32(max(y0, 0)) * params.w + u32(max(x0, 0));
    var best = x[arg];
    for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
        let iy = y0 + i32(ky);
        if (iy < 0 || iy >= i32(params.h)) {
            continue;
        }
        for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
            let ix = x0 + i32(kx);
            if (ix < 0 || ix >= i32(params.w)) {
                continue;
            }
            let k = rows + u32(iy) * params.w + u32(ix);
            let v = x[k];
            if (v > best) {
                best = v;
                arg = k;
            }
        }
    }
    return arg;
}
