// conv2d_backward_weight_3x3: partial[c, co, (ci·3 + ky)·3 + kx] = Σ_{pixels of chunk c} dy[n, co, oy, ox] · x[n, ci, oy + ky − pt, ox + kx − pl]
//                             bias_partial[c, co] = Σ_{pixels of chunk c} dy[n, co, oy, ox]
//
// The variant of conv2d_backward_weight for 3×3 kernels at stride 1 (every
// conv layer of the poster model). Same sum, same split into pixel chunks,
// same partial layout (reduce_partials adds the chunks into dw); what
// changes is which loads are shared. An invocation owns 8 output channels and
// a PAIR of input channels (ci, ci + 1) — all 18 of their taps — and walks
// its chunk's pixels in row order, two pixels of a row per step. The input
// columns under the pair (oy, ox), (oy, ox + 1) of channel ci are
// r{ky}{kx}, kx = 0 .. 3 (q{ky}{kx} for ci + 1): the first pixel's 3×3
// window is columns 0 .. 2, the second's 1 .. 3. Moving to the next pair
// shifts them left by two, so only the two new right columns are loaded
// (the whole window at the start of a row or chunk). Per pair: 16 loads of
// dy and 12 of x for 288 multiply-adds, against 8 + 8 per 64 in
// conv2d_backward_weight, whose 8 taps of a tile are flattened (ci, ky, kx)
// and share no input. Two pixels per step rather than one: each accumulator
// is read and written once per two multiply-adds (lavapipe keeps the 36
// mat2x4 in memory, not registers) — 1.09–1.17× on the model's layers
// (benches/conv.rs). A row of odd width ends with a single pixel: the
// second's dy reads as 0. On lavapipe a storage load costs about as much as 50
// multiply-adds (docs/performance.md): loads decide. benches/conv.rs
// measures both; the host picks this one for 3×3 stride-1 layers on every
// adapter. One input channel per invocation measured 1.4–1.7× slower, four
// no faster than two (and slower on the first layer's 3 channels).
//
// The bias gradient rides along: db[co] = Σ dy[n, co, pixel] over the same
// pixels, and the invocation already holds dy for its 8 channels at every
// pixel, so it sums them too (8 additions per pixel, no load) and the
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
// copies of their windows (Gpu::read_window; tex_at maps element i to a
// texel). On lavapipe a texel fetch is a gather while a storage load is a
// loop over the SIMD lanes: this kernel measured 1.85–2.06× faster with
// textures, copies included (benches/conv.rs, docs/kernels/conv2d.md).
// In f64 (textures hold no f64) the host binds the buffer windows and
// shaders::instantiate turns x and dy into storage arrays, tex_at(x, i)
// into x[i].
// Windows: x_base / y_base are the first elements of the x and dy windows
// (0 for texture copies, which start at the window).

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

// Element i of a texture copy (Gpu::read_window: four elements per texel,
// 4096 texels per row, 4096 rows per layer).
fn tex_at(t: texture_2d_array<f32>, i: u32) -> real {
    let k = i >> 2u;
    return real(textureLoad(t, vec2<u32>(k & 4095u, (k >> 12u) & 4095u), k >> 24u, 0)[i & 3u]);
}

// x[plane + iy·W + ix] of the window, or 0 in the padding.
fn input_at(plane: u32, iy: i32, ix: i32) -> real {
    let inside = iy >= 0 && iy < i32(params.h) && ix >= 0 && ix < i32(params.w);
    let idx = plane + u32(clamp(iy, 0, i32(params.h) - 1)) * params.w
        + u32(clamp(ix, 0, i32(params.w) - 1));
    return select(real(0.0), tex_at(x, idx), inside);
}

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
    // the input windows under the current pair of pixels: r{ky}{kx}, kx = 0 .. 3
    // (columns ox .. ox+3; the first pixel uses kx 0 .. 2, the second 1 .. 3)
    var r00 = real(0.0);
    var r01 = real(0.0);
    var r02 = real(0.0);
    var r03 = real(0.0);
    var r10 = real(0.0);
    var r11 = real(0.0);
    var r12 = real(0.0);
    var r13 = real(0.0);
    var r20 = real(0.0);
    var r21 = real(0.0);
    var r22 = real(0.0);
    var r23 = real(0.0);
    var q00 = real(0.0);
    var q01 = real(0.0);
    var q02 = real(0.0);
    var q03 = real(0.0);
    var q10 = real(0.0);
    var q11 = real(0.0);
    var q12 = real(0.0);
    var q13 = real(0.0);
    var q20 = real(0.0);
    var q21 = real(0.0);
    var q22 = real(0.0);
    var q23 = real(0.0);
    let p0 = c * params.chunk;
    let p_end = min(p0 + params.chunk, P);
    var n = p0 / plane;
    var oy = (p0 % plane) / params.ow;
    var ox = (p0 % plane) % params.ow;
    var fresh = true; // the window must be loaded whole (chunk or row start)
    var p = p0;
    loop {
        if (p >= p_end) {
            break;
        }
        // the pair (ox, ox + 1) of row oy; the second pixel only if it is in
        // the row and the chunk (else its dy reads as 0 and adds nothing)
        let second = ox + 1u < params.ow && p + 1u < p_end;
        let xp = params.x_base + (n * params.cin + ci) * hw;
        let xq = params.x_base + (n * params.cin + ci_b) * hw;
        let iy = i32(oy) - i32(params.pad_top);
        let ix = i32(ox) - i32(params.pad_left);
        if (fresh) {
            r00 = input_at(xp, iy, ix);
            r01 = input_at(xp, iy, ix + 1);
            r10 = input_at(xp, iy + 1, ix);
            r11 = input_at(xp, iy + 1, ix + 1);
            r20 = input_at(xp, iy + 2, ix);
            r21 = input_at(xp, iy + 2, ix + 1);
            q00 = input_at(xq, iy, ix);
            q01 = input_at(xq, iy, ix + 1);
            q10 = input_at(xq, iy + 1, ix);
            q11 = input_at(xq, iy + 1, ix + 1);
            q20 = input_at(xq, iy + 2, ix);
            q21 = input_at(xq, iy + 2, ix + 1);
            fresh = false;
        } else {
            r00 = r02;
            r01 = r03;
            r10 = r12;
            r11 = r13;
            r20 = r22;
            r21 = r23;
            q00 = q02;
            q01 = q03;
            q10 = q12;
            q11 = q13;
            q20 = q22;
            q21 = q23;
        }
        r02 = input_at(xp, iy, ix + 2);
        r12 = input_at(xp, iy + 1, ix + 2);
        r22 = input_at(xp, iy + 2, ix + 2);
        r03 = input_at(xp, iy, ix + 3);
        r13 = input_at(xp, iy + 1, ix + 3);
        r23 = input_at(xp, iy + 2, ix + 3);
        q02 = input_at(xq, iy, ix + 2);
        q12 = input_at(xq, iy + 1, ix + 2);
        q22 = input_at(xq, iy + 2, ix + 2);
        q03 = input_at(xq, iy, ix + 3);
        q13 = input_at(xq, iy + 1, ix + 3);
        q23 = input_at(xq, iy + 2, ix + 3);
        let pix = oy * params.ow + ox;
        let gi_lo = params.y_base + (n * params.cout + co_lo) * plane + pix;
        let gi_hi = params.y_base + (n * params.cout + co_hi) * plane + pix;
        let g = mat2x4<real>(
            vec4<real>(tex_at(dy, gi_lo.x), tex_at(dy, gi_lo.y), tex_at(dy, gi_lo.z), tex_at(dy, gi_lo.w)),
            vec4<real>(tex_at(dy, gi_hi.x), tex_at(dy, gi_hi.y), tex_at(dy, gi_hi.z), tex_at(dy, gi_hi.w)),
        );
        let gj_lo = gi_lo + 1u;
        let gj_hi = gi_hi + 1u;
        let zero = vec4<real>(0.0);
        let h = mat2x4<real>(
            select(zero, vec4<real>(tex_at(dy, gj_lo.x), tex_at(dy, gj_lo.y), tex_at(dy, gj_lo.z), tex_at(dy, gj_lo.w)), second),
            select(zero, vec4<real>(tex_at(dy, gj_hi.x), tex_at(dy, gj_hi.y), tex_at(dy, gj_hi.z), tex_at(dy, gj_hi.w)), second),
        );
        gs = gs + g + h;
        a00 = a00 + r00 * g + r01 * h;
        a01 = a01 + r01 * g + r02 * h;
        a02 = a02 + r02 * g + r03 * h;
        a10 = a10 + r10 * g + r11 * h;
        a11 = a11 + r11 * g + r12 * h;
        a12 = a12 + r12 * g + r13 * h;
        a20 = a20 + r20 * g + r21 * h;
        a21 = a21 + r21 * g + r22 * h;
        a22 = a22 + r22 * g + r23 * h;
        b00 = b00 + q00 * g + q01 * h;
        b01 = b01 + q01 * g + q02 * h;
        b02 = b02 + q02 * g + q03 * h;
        b10 = b10 + q10 * g + q11 * h;
        b11 = b11 + q11 * g + q12 * h;
        b12 = b12 + q12 * g + q13 * h;
        b20 = b20 + q20 * g + q21 * h;
        b21 = b21 + q21 * g + q22 * h;
        b22 = b22 + q22 * g + q23 * h;
        let step = select(1u, 2u, second);
        p = p + step;
        ox = ox + step;
        if (ox == params.ow) {
            ox = 0u;
            fresh = true;
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
