// conv2d_forward: y = conv(x, w) + b        (NCHW, cross-correlation as in Keras/PyTorch)
//
//   y[n, co, oy, ox] = b[co] + Σ_{ci, ky, kx} x[n, ci, oy·s + ky − pt, ox·s + kx − pl] · w[co, ci, ky, kx]
//   x: [N, Cin, H, W], w: [Cout, Cin, KH, KW], b: [Cout], y: [N, Cout, OH, OW]; taps outside x read 0.
//
// Thread mapping (implicit GEMM, register-blocked, no workgroup memory):
// workgroup (wg.x + wg.z·num_workgroups.x, wg.y) covers 512 output pixels × 8
// output channels; invocation l owns pixels p = tile·512 + l + 64·j (j = 0..7,
// so neighbouring invocations read neighbouring pixels) for channels
// 8·wg.y .. +8: 64 accumulators. Each tap (ci, ky, kx) loads 8 weights and 8
// inputs and does 64 multiply-adds.
// Bounds: pixels ≥ N·OH·OW and channels ≥ Cout are clamped for loads and not
// stored; taps in the padding read 0 (clamped index, then select).
// Windows: x and y may be windows of larger tensors; x_base / y_base are the
// window's first element (the host splits batches larger than one binding).

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> w: array<real>;
@group(0) @binding(3) var<storage, read> b: array<real>;
@group(0) @binding(4) var<storage, read_write> y: array<real>;

@compute @workgroup_size(64)
fn conv2d_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let P = params.n * params.oh * params.ow;
    let tile = wg.x + wg.z * nwg.x;
    let co0 = wg.y * 8u;
    let H = i32(params.h);
    let W = i32(params.w);
    var xoff: array<u32, 8>;
    var iy0: array<i32, 8>;
    var ix0: array<i32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let p = min(tile * 512u + l + 64u * j, P - 1u);
        let ox = p % params.ow;
        let t = p / params.ow;
        let oy = t % params.oh;
        let n = t / params.oh;
        xoff[j] = params.x_base + n * params.cin * params.h * params.w;
        iy0[j] = i32(oy * params.stride) - i32(params.pad_top);
        ix0[j] = i32(ox * params.stride) - i32(params.pad_left);
    }
    var wrow: array<u32, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        wrow[i] = min(co0 + i, params.cout - 1u) * params.cin * params.kh * params.kw;
    }
    var acc: array<array<real, 8>, 8>; // [pixel j][channel i], zero-initialised
    for (var ci = 0u; ci < params.cin; ci = ci + 1u) {
        for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
            for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
                let tap = (ci * params.kh + ky) * params.kw + kx;
                var wv: array<real, 8>;
                for (var i = 0u; i < 8u; i = i + 1u) {
                    wv[i] = w[wrow[i] + tap];
                }
                for (var j = 0u; j < 8u; j = j + 1u) {
                    let iy = iy0[j] + i32(ky);
                    let ix = ix0[j] + i32(kx);
                    let inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                    let idx = xoff[j] + (ci * params.h + u32(clamp(iy, 0, H - 1))) * params.w
                        + u32(clamp(ix, 0, W - 1));
                    let xv = select(real(0.0), x[idx], inside);
                    for (var i = 0u; i < 8u; i = i + 1u) {
                        acc[j][i] = acc[j][i] + xv * wv[i];
                    }
                }
            }
        }
    }
    let plane = params.oh * params.ow;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let p = tile * 512u + l + 64u * j;
        if (p >= P) {
            continue;
        }
        let n = p / plane;
        let pix = p % plane;
        for (var i = 0u; i < 8u; i = i + 1u) {
            let co = co0 + i;
            if (co < params.cout) {
                y[params.y_base + (n * params.cout + co) * plane + pix] = acc[j][i] + b[co];
            }
        }
    }
}
