// conv2d_backward_weight_3x3: partial[c, co, (ci·3 + ky)·3 + kx] = Σ_{pixels of chunk c} dy[n, co, oy, ox] · x[n, ci, oy + ky − pt, ox + kx − pl]
//                             bias_partial[c, co] = Σ_{pixels of chunk c} dy[n, co, oy, ox]
//
// The variant of conv2d_backward_weight for 3×3 kernels at stride 1 (every
// conv layer of the poster model). Same sum, same split into pixel chunks,
// same partial layout (reduce_partials adds the chunks into dw); what
// changes is which loads are shared. An invocation owns 8 output channels and
// a PAIR of input channels (ci, ci + 1) — all 18 of their taps — and walks
// its chunk's pixels in row order, eight pixels of a row per step. Per step
// it fetches the input columns under them: for channel ci, columns ox ..
// ox+11 of each kernel row as c{ky} (d{ky} for ci + 1); pixel j's tap
// (ky, kx) reads column kx + j. Texture copies hold four elements per texel
// (Gpu::read_window), so twelve consecutive columns are four texel fetches
// and a shift (input12), and dy of one channel at the eight pixels three
// (dy8). Keeping columns 8 and 9 from the step before instead (8 new
// columns: three fetches) needs a branch at the start of each row, and
// lavapipe runs a branch under a lane mask whether or not any lane takes
// it: the twelve scalar fetches of the row start cost every step, and
// fetching afresh measured faster (docs/kernels/conv2d.md). Per
// step: 24 fetches of dy and 24 of x for 1152 multiply-adds, against 16
// loads per 64 in conv2d_backward_weight, whose 8 taps of a tile are
// flattened (ci, ky, kx) and share no input. Eight pixels per step also
// means each accumulator is read and written once per eight multiply-adds
// (lavapipe keeps the 36 mat2x4 in memory, not registers). Measured per
// step (benches/conv.rs, docs/kernels/conv2d.md): two pixels 1.13–1.17×
// faster than one, four faster than two, eight faster
// than four. Pixels past the end of the row or the chunk (the last step of
// a row whose width is not a multiple of 8) read dy as 0.
// On lavapipe a storage load costs about as much as 50
// multiply-adds (docs/performance.md): loads decide. benches/conv.rs
// measures both; the host picks this one for 3×3 stride-1 layers on every
// adapter. One input channel per invocation measured slower, four
// no faster than two (and slower on the first layer's 3 channels).
//
// The bias gradient rides along: db[co] = Σ dy[n, co, pixel] over the same
// pixels, and the invocation already holds dy for its 8 channels at every
// pixel, so it sums them too (8 additions per pixel, no fetch) and the
// invocations of the first pair (ci = 0) write bias_partial[c, co] — in
// place of conv2d_backward_bias's own pass over dy.
//
// Thread mapping: invocation t = gid.x + gid.y·num_workgroups.x·64 →
// pair ci = 2·(t % ⌈Cin/2⌉), co tile = (t / ⌈Cin/2⌉) % ⌈Cout/8⌉ (channels
// 8·tile .. +8), chunk c = t / (⌈Cin/2⌉·⌈Cout/8⌉); a_{ky kx} / b_{ky kx}
// (mat2x4: 8 channels) accumulate tap (ky, kx) of ci / ci + 1. Named
// variables, not arrays (lavapipe keeps arrays in memory).
// Bounds: channels past Cout are clamped for loads and not stored; with Cin
// odd the last pair's second channel is clamped for loads and not stored;
// inputs in the padding read 0; invocations past the last chunk return.
// Inputs through textures: x and dy are read with textureLoad from texture
// copies of their windows (Gpu::read_window; tex4_at reads texel k,
// elements 4k .. 4k+3). On lavapipe a texel fetch is a gather while a storage load is a
// loop over the SIMD lanes: this kernel measured faster with
// textures, copies included (benches/conv.rs, docs/kernels/conv2d.md).
// In f64 (textures hold no f64) the host binds the buffer windows and
// shaders::instantiate turns x and dy into storage arrays, tex_at(x, i)
// into x[i] and tex4_at(x, k) into a vec4 of x[4k .. 4k+3].
// Windows: x_base / y_base are the first elements of the x and dy windows
// (0 .. 3 for texture copies, which start at the last multiple of four).
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

@compute @workgroup_size(64)
fn conv2d_backward_weight_3x3(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let CT = (params.cout + 7u) / 8u;
    let P = params.n * params.oh * params.ow;
    let chunks = (P + params.chunk - 1u) / params.chunk;
    let c = t / (((params.cin + 1u) / 2u) * CT);
    if (c >= chunks) {
        return;
    }
    let CP = (params.cin + 1u) / 2u; // input-channel pairs
    let ci = (t % CP) * 2u;
    let ci_b = min(ci + 1u, params.cin - 1u); // clamped for loads; not stored past Cin
    let co0 = ((t / CP) % CT) * 8u;
    let co_lo = min(vec4<u32>(co0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(params.cout - 1u));
    let co_hi = min(vec4<u32>(co0) + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(params.cout - 1u));
    let plane = params.oh * params.ow;
    let hw = params.h * params.w;
    var a00 = mat2x4<real>();
    var a01 = mat2x4<real>();
    var a02 = mat2x4<real>();
    var a10 = mat2x4<real>();
    var a11 = mat2x4<real>();
    var a12 = mat2x4<real>();
    var a20 = mat2x4<real>();
    var a21 = mat2x4<real>();
    var a22 = mat2x4<real>();
    var b00 = mat2x4<real>();
    var b01 = mat2x4<real>();
    var b02 = mat2x4<real>();
    var b10 = mat2x4<real>();
    var b11 = mat2x4<real>();
    var b12 = mat2x4<real>();
    var b20 = mat2x4<real>();
    var b21 = mat2x4<real>();
    var b22 = mat2x4<real>();
    var gs = mat2x4<real>(); // Σ dy of the 8 channels (the bias gradient)
    // the input columns under the current eight pixels (oy, ox .. ox+7) of
    // channel ci, fetched afresh at every step: c{ky} holds columns ox ..
    // ox+11 of kernel row ky (d{ky} for ci + 1). Pixel j's tap kx reads
    // column kx + j.
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
        // up to eight pixels of row oy, inside the row and the chunk; the
        // others' dy reads as 0 and adds nothing
        let count = min(min(8u, params.ow - ox), p_end - p);
        let keep_lo = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(count);
        let keep_hi = vec4<u32>(4u, 5u, 6u, 7u) < vec4<u32>(count);
        let xp = params.x_base + (n * params.cin + ci) * hw;
        let xq = params.x_base + (n * params.cin + ci_b) * hw;
        let iy = i32(oy) - i32(params.pad_top);
        let ix = i32(ox) - i32(params.pad_left);
        let c0 = input12(xp, iy, ix);
        let c1 = input12(xp, iy + 1, ix);
        let c2 = input12(xp, iy + 2, ix);
        let d0 = input12(xq, iy, ix);
        let d1 = input12(xq, iy + 1, ix);
        let d2 = input12(xq, iy + 2, ix);
        // dy of the 8 channels at the eight pixels: e{i} holds channel
        // co0 + i, gj (mat2x4) the 8 channels of pixel j
        let pix = oy * params.ow + ox;
        let gi_lo = params.y_base + (n * params.cout + co_lo) * plane + pix;
        let gi_hi = params.y_base + (n * params.cout + co_hi) * plane + pix;
        let e0 = dy8(gi_lo.x, keep_lo, keep_hi);
        let e1 = dy8(gi_lo.y, keep_lo, keep_hi);
        let e2 = dy8(gi_lo.z, keep_lo, keep_hi);
        let e3 = dy8(gi_lo.w, keep_lo, keep_hi);
        let e4 = dy8(gi_hi.x, keep_lo, keep_hi);
        let e5 = dy8(gi_hi.y, keep_lo, keep_hi);
        let e6 = dy8(gi_hi.z, keep_lo, keep_hi);
        let e7 = dy8(gi_hi.w, keep_lo, keep_hi);
        let g0 = mat2x4<real>(vec4<real>(e0.lo.x, e1.lo.x, e2.lo.x, e3.lo.x), vec4<real>(e4.lo.x, e5.lo.x, e6.lo.x, e7.lo.x));
        let g1 = mat2x4<real>(vec4<real>(e0.lo.y, e1.lo.y, e2.lo.y, e3.lo.y), vec4<real>(e4.lo.y, e5.lo.y, e6.lo.y, e7.lo.y));
        let g2 = mat2x4<real>(vec4<real>(e0.lo.z, e1.lo.z, e2.lo.z, e3.lo.z), vec4<real>(e4.lo.z, e5.lo.z, e6.lo.z, e7.lo.z));
        let g3 = mat2x4<real>(vec4<real>(e0.lo.w, e1.lo.w, e2.lo.w, e3.lo.w), vec4<real>(e4.lo.w, e5.lo.w, e6.lo.w, e7.lo.w));
        let g4 = mat2x4<real>(vec4<real>(e0.hi.x, e1.hi.x, e2.hi.x, e3.hi.x), vec4<real>(e4.hi.x, e5.hi.x, e6.hi.x, e7.hi.x));
        let g5 = mat2x4<real>(vec4<real>(e0.hi.y, e1.hi.y, e2.hi.y, e3.hi.y), vec4<real>(e4.hi.y, e5.hi.y, e6.hi.y, e7.hi.y));
        let g6 = mat2x4<real>(vec4<real>(e0.hi.z, e1.hi.z, e2.hi.z, e3.hi.z), vec4<real>(e4.hi.z, e5.hi.z, e6.hi.z, e7.hi.z));
        let g7 = mat2x4<real>(vec4<real>(e0.hi.w, e1.hi.w, e2.hi.w, e3.hi.w), vec4<real>(e4.hi.w, e5.hi.w, e6.hi.w, e7.hi.w));
        gs = gs + g0 + g1 + g2 + g3 + g4 + g5 + g6 + g7;
        a00 = a00 + c0.lo.x * g0 + c0.lo.y * g1 + c0.lo.z * g2 + c0.lo.w * g3
            + c0.mid.x * g4 + c0.mid.y * g5 + c0.mid.z * g6 + c0.mid.w * g7;
        a01 = a01 + c0.lo.y * g0 + c0.lo.z * g1 + c0.lo.w * g2 + c0.mid.x * g3
            + c0.mid.y * g4 + c0.mid.z * g5 + c0.mid.w * g6 + c0.hi.x * g7;
        a02 = a02 + c0.lo.z * g0 + c0.lo.w * g1 + c0.mid.x * g2 + c0.mid.y * g3
            + c0.mid.z * g4 + c0.mid.w * g5 + c0.hi.x * g6 + c0.hi.y * g7;
        a10 = a10 + c1.lo.x * g0 + c1.lo.y * g1 + c1.lo.z * g2 + c1.lo.w * g3
            + c1.mid.x * g4 + c1.mid.y * g5 + c1.mid.z * g6 + c1.mid.w * g7;
        a11 = a11 + c1.lo.y * g0 + c1.lo.z * g1 + c1.lo.w * g2 + c1.mid.x * g3
            + c1.mid.y * g4 + c1.mid.z * g5 + c1.mid.w * g6 + c1.hi.x * g7;
        a12 = a12 + c1.lo.z * g0 + c1.lo.w * g1 + c1.mid.x * g2 + c1.mid.y * g3
            + c1.mid.z * g4 + c1.mid.w * g5 + c1.hi.x * g6 + c1.hi.y * g7;
        a20 = a20 + c2.lo.x * g0 + c2.lo.y * g1 + c2.lo.z * g2 + c2.lo.w * g3
            + c2.mid.x * g4 + c2.mid.y * g5 + c2.mid.z * g6 + c2.mid.w * g7;
        a21 = a21 + c2.lo.y * g0 + c2.lo.z * g1 + c2.lo.w * g2 + c2.mid.x * g3
            + c2.mid.y * g4 + c2.mid.z * g5 + c2.mid.w * g6 + c2.hi.x * g7;
        a22 = a22 + c2.lo.z * g0 + c2.lo.w * g1 + c2.mid.x * g2 + c2.mid.y * g3
            + c2.mid.z * g4 + c2.mid.w * g5 + c2.hi.x * g6 + c2.hi.y * g7;
        b00 = b00 + d0.lo.x * g0 + d0.lo.y * g1 + d0.lo.z * g2 + d0.lo.w * g3
            + d0.mid.x * g4 + d0.mid.y * g5 + d0.mid.z * g6 + d0.mid.w * g7;
        b01 = b01 + d0.lo.y * g0 + d0.lo.z * g1 + d0.lo.w * g2 + d0.mid.x * g3
            + d0.mid.y * g4 + d0.mid.z * g5 + d0.mid.w * g6 + d0.hi.x * g7;
        b02 = b02 + d0.lo.z * g0 + d0.lo.w * g1 + d0.mid.x * g2 + d0.mid.y * g3
            + d0.mid.z * g4 + d0.mid.w * g5 + d0.hi.x * g6 + d0.hi.y * g7;
        b10 = b10 + d1.lo.x * g0 + d1.lo.y * g1 + d1.lo.z * g2 + d1.lo.w * g3
            + d1.mid.x * g4 + d1.mid.y * g5 + d1.mid.z * g6 + d1.mid.w * g7;
        b11 = b11 + d1.lo.y * g0 + d1.lo.z * g1 + d1.lo.w * g2 + d1.mid.x * g3
            + d1.mid.y * g4 + d1.mid.z * g5 + d1.mid.w * g6 + d1.hi.x * g7;
        b12 = b12 + d1.lo.z * g0 + d1.lo.w * g1 + d1.mid.x * g2 + d1.mid.y * g3
            + d1.mid.z * g4 + d1.mid.w * g5 + d1.hi.x * g6 + d1.hi.y * g7;
        b20 = b20 + d2.lo.x * g0 + d2.lo.y * g1 + d2.lo.z * g2 + d2.lo.w * g3
            + d2.mid.x * g4 + d2.mid.y * g5 + d2.mid.z * g6 + d2.mid.w * g7;
        b21 = b21 + d2.lo.y * g0 + d2.lo.z * g1 + d2.lo.w * g2 + d2.mid.x * g3
            + d2.mid.y * g4 + d2.mid.z * g5 + d2.mid.w * g6 + d2.hi.x * g7;
        b22 = b22 + d2.lo.z * g0 + d2.lo.w * g1 + d2.mid.x * g2 + d2.mid.y * g3
            + d2.mid.z * g4 + d2.mid.w * g5 + d2.hi.x * g6 + d2.hi.y * g7;
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
    var acc = array<mat2x4<real>, 18>(a00, a01, a02, a10, a11, a12, a20, a21, a22,
                                      b00, b01, b02, b10, b11, b12, b20, b21, b22);
    let taps = params.cin * 9u;
    let pair = select(9u, 18u, ci + 1u < params.cin); // taps of this pair inside Cin
    for (var i = 0u; i < 8u; i = i + 1u) {
        if (co0 + i >= params.cout) {
            break;
        }
        for (var j = 0u; j < pair; j = j + 1u) {
            partial[(c * params.cout + co0 + i) * taps + ci * 9u + j] = acc[j][i / 4u][i % 4u];
        }
        if (ci == 0u) {
            bias_partial[c * params.cout + co0 + i] = gs[i / 4u][i % 4u];
        }
    }
}
