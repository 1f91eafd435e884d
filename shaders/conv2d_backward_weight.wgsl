// conv2d_backward_weight: partial[c, co, tap] = Σ_{pixels of chunk c} dy · x   (then reduce_partials: dw += Σ_c partial)
//
//   forward:  y[n, co, oy, ox] = b[co] + Σ_{ci, ky, kx} x[n, ci, oy·s + ky − pt, ox·s + kx − pl] · w[co, ci, ky, kx]
//   backward: dw[co, ci, ky, kx] = Σ_{n, oy, ox} dy[n, co, oy, ox] · x[n, ci, oy·s + ky − pt, ox·s + kx − pl]
//
// The sum runs over every output pixel (N·OH·OW, millions at 350×350) while dw
// is small, so the sum is split ("split-K"): the pixels are cut into chunks of
// params.chunk; each chunk writes its own partial sums and `reduce_partials`
// adds the chunks into dw.
// Thread mapping: invocation t (t = gid.x + gid.y·num_workgroups.x·64) owns
// the 8×8 tile of (co, tap) at tile (t % TT, (t / TT) % CT) of chunk t / (TT·CT),
// with tap = (ci·KH + ky)·KW + kx, TT = ⌈taps/8⌉, CT = ⌈Cout/8⌉. Each pixel
// loads 8 output gradients and 8 inputs and does 64 multiply-adds.
// Bounds: rows/taps beyond the ends are clamped for loads and not stored;
// invocations past the last chunk return; inputs in the padding read 0.
// Windows: x_base / y_base are the first elements of the x and dy windows.

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> partial: array<real>;

@compute @workgroup_size(64)
fn conv2d_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let taps = params.cin * params.kh * params.kw;
    let TT = (taps + 7u) / 8u;
    let CT = (params.cout + 7u) / 8u;
    let P = params.n * params.oh * params.ow;
    let chunks = (P + params.chunk - 1u) / params.chunk;
    let c = t / (TT * CT);
    if (c >= chunks) {
        return;
    }
    let tap0 = (t % TT) * 8u;
    let co0 = ((t / TT) % CT) * 8u;
    let H = i32(params.h);
    let W = i32(params.w);
    var tci: array<u32, 8>;
    var tky: array<i32, 8>;
    var tkx: array<i32, 8>;
    for (var j = 0u; j < 8u; j = j + 1u) {
        let tp = min(tap0 + j, taps - 1u);
        tkx[j] = i32(tp % params.kw) - i32(params.pad_left);
        tky[j] = i32((tp / params.kw) % params.kh) - i32(params.pad_top);
        tci[j] = tp / (params.kw * params.kh);
    }
    var co: array<u32, 8>;
    for (var i = 0u; i < 8u; i = i + 1u) {
        co[i] = min(co0 + i, params.cout - 1u);
    }
    let plane = params.oh * params.ow;
    var acc: array<array<real, 8>, 8>; // [channel i][tap j]
    let p_end = min((c + 1u) * params.chunk, P);
    for (var p = c * params.chunk; p < p_end; p = p + 1u) {
        let n = p / plane;
        let pix = p % plane;
        let oy = i32(pix / params.ow) * i32(params.stride);
        let ox = i32(pix % params.ow) * i32(params.stride);
        var g: array<real, 8>;
        for (var i = 0u; i < 8u; i = i + 1u) {
            g[i] = dy[params.y_base + (n * params.cout + co[i]) * plane + pix];
        }
        let xn = params.x_base + n * params.cin * params.h * params.w;
        for (var j = 0u; j < 8u; j = j + 1u) {
            let iy = oy + tky[j];
            let ix = ox + tkx[j];
            let inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
            let idx = xn + (tci[j] * params.h + u32(clamp(iy, 0, H - 1))) * params.w + u32(clamp(ix, 0, W - 1));
            let xv = select(real(0.0), x[idx], inside);
            for (var i = 0u; i < 8u; i = i + 1u) {
                acc[i][j] = acc[i][j] + g[i] * xv;
            }
        }
    }
    for (var i = 0u; i < 8u; i = i + 1u) {
        if (co0 + i >= params.cout) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (tap0 + j < taps) {
                partial[(c * params.cout + co0 + i) * taps + tap0 + j] = acc[i][j];
            }
        }
    }
}
