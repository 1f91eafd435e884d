// conv2d_backward_weight_3x3_subgroup: partial[c, co, (ci·3 + ky)·3 + kx] = Σ_{pixels of chunk c} dy[n, co, oy, ox] · x[n, ci, oy + ky − pt, ox + kx − pl]
//                                      bias_partial[c, co] = Σ_{pixels of chunk c} dy[n, co, oy, ox]
//
// The variant of conv2d_backward_weight_3x3 for adapters with subgroups of
// at least 8 invocations (AdapterSummary::subgroups) and layers with at
// least 8 input channels. Same sum, same pixel chunks, same partial layout
// (reduce_partials adds the chunks into dw), same walk: eight pixels of a
// row per step, the input columns under them fetched afresh at each step
// (input12: twelve columns, four texel fetches; no branch at row starts).
// What changes is who fetches dy. In conv2d_backward_weight_3x3 every
// invocation fetches dy of its 8 output channels at the eight pixels (24
// texel fetches per step, with 18 for x), and its neighbours, which differ
// only in the input channel, fetch the same values again. Here the
// invocations of a subgroup share the chunk and the 16 output channels and
// differ in the input channel; lane i fetches dy of channels co0 + i and
// co0 + 8 + i (6 fetches) and subgroupShuffle at constant lanes hands the
// 128 values to every lane (a broadcast each on lavapipe). Per step: 6
// fetches of dy and 12 of x for 1152 multiply-adds (written through fma, as
// conv2d_forward_3x3; lavapipe emits a multiply and an add for each).
//
// Thread mapping: S = subgroup_size; invocation t = gid.x +
// gid.y·num_workgroups.x·64 is lane t % S of subgroup s = t / S (subgroups
// are runs of S consecutive invocations); with G = ⌈Cin / S⌉ groups of input
// channels and T = ⌈Cout / 16⌉ channel tiles: input channel ci = (s % G)·S +
// lane, tile = (s / G) % T (channels co0 = 16·tile .. +16), chunk c = s /
// (G·T). a{ky}{kx} (mat4x4, column q = channels co0 + 4q .. +3) accumulates
// tap (ky, kx) of ci; gs sums dy (the bias gradient).
// Bounds: channels past Cout and Cin are clamped for loads and not stored
// (the lanes past Cin still fetch and shuffle dy for the others); inputs in
// the padding read 0; pixels past the end of the row or the chunk read dy as
// 0; subgroups past the last chunk return (all their lanes together). The
// host dispatches for the adapter's largest subgroup size; smaller
// subgroups leave more of the invocations past the last chunk.
// Inputs through textures, as in conv2d_backward_weight_3x3 (f64: storage
// arrays, shaders::instantiate). x_base / y_base: the windows' first
// elements.
// import texels, conv2d_rows, conv2d_weight_3x3

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var dy: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read_write> partial: array<real>;
@group(0) @binding(4) var<storage, read_write> bias_partial: array<real>;

// dy of the 16 channels at pixel j: column q holds channels 4q .. 4q+3.
// Lane i holds channel i in v.x and channel 8 + i in v.y.
fn spread(v: vec2<real>) -> mat4x4<real> {
    return mat4x4<real>(
        vec4<real>(subgroupShuffle(v.x, 0u), subgroupShuffle(v.x, 1u), subgroupShuffle(v.x, 2u), subgroupShuffle(v.x, 3u)),
        vec4<real>(subgroupShuffle(v.x, 4u), subgroupShuffle(v.x, 5u), subgroupShuffle(v.x, 6u), subgroupShuffle(v.x, 7u)),
        vec4<real>(subgroupShuffle(v.y, 0u), subgroupShuffle(v.y, 1u), subgroupShuffle(v.y, 2u), subgroupShuffle(v.y, 3u)),
        vec4<real>(subgroupShuffle(v.y, 4u), subgroupShuffle(v.y, 5u), subgroupShuffle(v.y, 6u), subgroupShuffle(v.y, 7u)),
    );
}

// dy of the 16 channels at the eight pixels of a step: gj is pixel j's.
struct Grads {
    g0: mat4x4<real>, g1: mat4x4<real>, g2: mat4x4<real>, g3: mat4x4<real>,
    g4: mat4x4<real>, g5: mat4x4<real>, g6: mat4x4<real>, g7: mat4x4<real>,
}

// a + v·g, column by column as fma.
fn mac(a: mat4x4<real>, v: real, g: mat4x4<real>) -> mat4x4<real> {
    let s = vec4<real>(v);
    return mat4x4<real>(fma(s, g[0], a[0]), fma(s, g[1], a[1]), fma(s, g[2], a[2]), fma(s, g[3], a[3]));
}

// a + Σ_j x_j · g_j over the eight pixels, x = (lo, hi): one tap's sum.
fn tap(a: mat4x4<real>, lo: vec4<real>, hi: vec4<real>, g: Grads) -> mat4x4<real> {
    let a4 = mac(mac(mac(mac(a, lo.x, g.g0), lo.y, g.g1), lo.z, g.g2), lo.w, g.g3);
    return mac(mac(mac(mac(a4, hi.x, g.g4), hi.y, g.g5), hi.z, g.g6), hi.w, g.g7);
}

@compute @workgroup_size(64)
fn conv2d_backward_weight_3x3_subgroup(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let s = t / lanes;
    let G = (params.cin + lanes - 1u) / lanes;
    let T = (params.cout + 15u) / 16u;
    let P = params.n * params.oh * params.ow;
    let chunks = (P + params.chunk - 1u) / params.chunk;
    let c = s / (G * T);
    if (c >= chunks) {
        return;
    }
    let ci = (s % G) * lanes + lane;
    let ci_load = min(ci, params.cin - 1u);
    let co0 = ((s / G) % T) * 16u;
    let i = lane & 7u;
    let co_a = min(co0 + i, params.cout - 1u); // this lane's dy fetches
    let co_b = min(co0 + 8u + i, params.cout - 1u);
    let plane = params.oh * params.ow;
    let hw = params.h * params.w;
    var a00 = mat4x4<real>();
    var a01 = mat4x4<real>();
    var a02 = mat4x4<real>();
    var a10 = mat4x4<real>();
    var a11 = mat4x4<real>();
    var a12 = mat4x4<real>();
    var a20 = mat4x4<real>();
    var a21 = mat4x4<real>();
    var a22 = mat4x4<real>();
    var gs = mat4x4<real>();
    let p0 = c * params.chunk;
    let p_end = min(p0 + params.chunk, P);
    var n = p0 / plane;
    var oy = (p0 % plane) / params.ow;
    var ox = (p0 % plane) % params.ow;
    var p = p0;
    loop {
        if (p >= p_end) {
            break;
        }
        let count = min(min(8u, params.ow - ox), p_end - p);
        let keep_lo = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(count);
        let keep_hi = vec4<u32>(4u, 5u, 6u, 7u) < vec4<u32>(count);
        let xp = params.x_base + (n * params.cin + ci_load) * hw;
        let iy = i32(oy) - i32(params.pad_top);
        let ix = i32(ox) - i32(params.pad_left);
        // the input columns under the eight pixels, fetched afresh at every
        // step: c{ky} holds columns ox .. ox+11 of kernel row ky; pixel j's
        // tap kx reads column kx + j
        let c0 = input12(xp, iy, ix);
        let c1 = input12(xp, iy + 1, ix);
        let c2 = input12(xp, iy + 2, ix);
        let pix = params.y_base + n * params.cout * plane + oy * params.ow + ox;
        let ea = dy8(pix + co_a * plane, keep_lo, keep_hi);
        let eb = dy8(pix + co_b * plane, keep_lo, keep_hi);
        let g = Grads(
            spread(vec2<real>(ea.lo.x, eb.lo.x)), spread(vec2<real>(ea.lo.y, eb.lo.y)),
            spread(vec2<real>(ea.lo.z, eb.lo.z)), spread(vec2<real>(ea.lo.w, eb.lo.w)),
            spread(vec2<real>(ea.hi.x, eb.hi.x)), spread(vec2<real>(ea.hi.y, eb.hi.y)),
            spread(vec2<real>(ea.hi.z, eb.hi.z)), spread(vec2<real>(ea.hi.w, eb.hi.w)),
        );
        gs = gs + g.g0 + g.g1 + g.g2 + g.g3 + g.g4 + g.g5 + g.g6 + g.g7;
        a00 = tap(a00, c0.lo, c0.mid, g);
        a01 = tap(a01, vec4<real>(c0.lo.yzw, c0.mid.x), vec4<real>(c0.mid.yzw, c0.hi.x), g);
        a02 = tap(a02, vec4<real>(c0.lo.zw, c0.mid.xy), vec4<real>(c0.mid.zw, c0.hi.xy), g);
        a10 = tap(a10, c1.lo, c1.mid, g);
        a11 = tap(a11, vec4<real>(c1.lo.yzw, c1.mid.x), vec4<real>(c1.mid.yzw, c1.hi.x), g);
        a12 = tap(a12, vec4<real>(c1.lo.zw, c1.mid.xy), vec4<real>(c1.mid.zw, c1.hi.xy), g);
        a20 = tap(a20, c2.lo, c2.mid, g);
        a21 = tap(a21, vec4<real>(c2.lo.yzw, c2.mid.x), vec4<real>(c2.mid.yzw, c2.hi.x), g);
        a22 = tap(a22, vec4<real>(c2.lo.zw, c2.mid.xy), vec4<real>(c2.mid.zw, c2.hi.xy), g);
        p = p + count;
        ox = ox + count;
        if (ox == params.ow) {
            ox = 0u;
            oy = oy + 1u;
            if (oy == params.oh) {
                oy = 0u;
                n = n + 1u;
            }
        }
    }
    if (ci >= params.cin) {
        return;
    }
    var acc = array<mat4x4<real>, 9>(a00, a01, a02, a10, a11, a12, a20, a21, a22);
    let taps = params.cin * 9u;
    for (var k = 0u; k < 16u; k = k + 1u) {
        if (co0 + k >= params.cout) {
            break;
        }
        for (var j = 0u; j < 9u; j = j + 1u) {
            partial[(c * params.cout + co0 + k) * taps + ci * 9u + j] = acc[j][k / 4u][k % 4u];
        }
        if (ci == 0u) {
            bias_partial[c * params.cout + co0 + k] = gs[k / 4u][k % 4u];
        }
    }
}
