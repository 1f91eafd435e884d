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
// loads 8 output gradients and 8 inputs and does 64 multiply-adds into the
// 8 × 8 accumulators, one mat2x4 per tap (named variables, not an array).
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
    // The tile's 8 taps as (input-channel plane offset, ky − pt, kx − pl),
    // taps 0–3 in the _lo vectors and 4–7 in the _hi ones.
    var t_lo = vec4<u32>(tap0) + vec4<u32>(0u, 1u, 2u, 3u);
    var t_hi = vec4<u32>(tap0) + vec4<u32>(4u, 5u, 6u, 7u);
    t_lo = min(t_lo, vec4<u32>(taps - 1u));
    t_hi = min(t_hi, vec4<u32>(taps - 1u));
    let kw = vec4<u32>(params.kw);
    let kh = vec4<u32>(params.kh);
    let tx_lo = vec4<i32>(t_lo % kw) - i32(params.pad_left);
    let tx_hi = vec4<i32>(t_hi % kw) - i32(params.pad_left);
    let ty_lo = vec4<i32>((t_lo / kw) % kh) - i32(params.pad_top);
    let ty_hi = vec4<i32>((t_hi / kw) % kh) - i32(params.pad_top);
    let hw = params.h * params.w;
    let tc_lo = t_lo / (kw * kh) * hw;
    let tc_hi = t_hi / (kw * kh) * hw;
    // The tile's 8 output channels, clamped for loads.
    let co_lo = min(vec4<u32>(co0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.cout - 1u));
    let co_hi = min(vec4<u32>(co0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(params.cout - 1u));
    let plane = params.oh * params.ow;
    // a_j holds tap j's 8 channels: column 0 = channels 0–3, column 1 = 4–7.
    // Named variables, not an array: lavapipe keeps private arrays in memory
    // (see conv2d_forward.wgsl).
    var a0 = mat2x4<real>();
    var a1 = mat2x4<real>();
    var a2 = mat2x4<real>();
    var a3 = mat2x4<real>();
    var a4 = mat2x4<real>();
    var a5 = mat2x4<real>();
    var a6 = mat2x4<real>();
    var a7 = mat2x4<real>();
    let p_end = min((c + 1u) * params.chunk, P);
    for (var p = c * params.chunk; p < p_end; p = p + 1u) {
        let n = p / plane;
        let pix = p % plane;
        let oy = i32(pix / params.ow) * i32(params.stride);
        let ox = i32(pix % params.ow) * i32(params.stride);
        let gi_lo = params.y_base + (n * params.cout + co_lo) * plane + pix;
        let gi_hi = params.y_base + (n * params.cout + co_hi) * plane + pix;
        let g = mat2x4<real>(
            vec4<real>(dy[gi_lo.x], dy[gi_lo.y], dy[gi_lo.z], dy[gi_lo.w]),
            vec4<real>(dy[gi_hi.x], dy[gi_hi.y], dy[gi_hi.z], dy[gi_hi.w]),
        );
        let xn = params.x_base + n * params.cin * hw;
        let iy_lo = oy + ty_lo;
        let iy_hi = oy + ty_hi;
        let ix_lo = ox + tx_lo;
        let ix_hi = ox + tx_hi;
        let in_lo = (iy_lo >= vec4<i32>(0)) & (iy_lo < vec4<i32>(H)) & (ix_lo >= vec4<i32>(0)) & (ix_lo < vec4<i32>(W));
        let in_hi = (iy_hi >= vec4<i32>(0)) & (iy_hi < vec4<i32>(H)) & (ix_hi >= vec4<i32>(0)) & (ix_hi < vec4<i32>(W));
        let i_lo = xn + tc_lo + vec4<u32>(clamp(iy_lo, vec4<i32>(0), vec4<i32>(H - 1))) * params.w
            + vec4<u32>(clamp(ix_lo, vec4<i32>(0), vec4<i32>(W - 1)));
        let i_hi = xn + tc_hi + vec4<u32>(clamp(iy_hi, vec4<i32>(0), vec4<i32>(H - 1))) * params.w
            + vec4<u32>(clamp(ix_hi, vec4<i32>(0), vec4<i32>(W - 1)));
        let x_lo = select(vec4<real>(0.0), vec4<real>(x[i_lo.x], x[i_lo.y], x[i_lo.z], x[i_lo.w]), in_lo);
        let x_hi = select(vec4<real>(0.0), vec4<real>(x[i_hi.x], x[i_hi.y], x[i_hi.z], x[i_hi.w]), in_hi);
        a0 = a0 + x_lo.x * g;
        a1 = a1 + x_lo.y * g;
        a2 = a2 + x_lo.z * g;
        a3 = a3 + x_lo.w * g;
        a4 = a4 + x_hi.x * g;
        a5 = a5 + x_hi.y * g;
        a6 = a6 + x_hi.z * g;
        a7 = a7 + x_hi.w * g;
    }
    var acc = array<mat2x4<real>, 8>(a0, a1, a2, a3, a4, a5, a6, a7);
    for (var i = 0u; i < 8u; i = i + 1u) {
        if (co0 + i >= params.cout) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (tap0 + j < taps) {
                partial[(c * params.cout + co0 + i) * taps + tap0 + j] = acc[j][i / 4u][i % 4u];
            }
        }
    }
}
