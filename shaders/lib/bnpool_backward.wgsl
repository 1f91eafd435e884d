// bnpool_backward: what bnpool's two backward kernels share: finding each
// 2×2 window's first maximum again from z and the saved statistics (the
// normalised and pooled tensors are never stored), and the window gradients
// through dropout's mask.
//
// Expects what lib/bnpool.wgsl expects, plus `dp` (a texture copy of the
// pooled gradient). Imports after texels, dropout_mask and bnpool.
// Thread mapping: none (functions only). Bounds: window_grads zeroes the
// windows past a row's end.

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
