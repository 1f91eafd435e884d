// conv2d_forward_3x3: y = conv(x, w) + b for 3×3 kernels at stride 1, the
// poster model's four convolutions (and their backward-input, the same
// correlation with the flipped kernel; see conv2d.rs)
//
//   y[n, co, oy, ox] = b[co] + Σ_{ci, ky, kx} x[n, ci, oy + ky − pt, ox + kx − pl] · w[co, ci, ky, kx]
//   x: [N, Cin, H, W], w: [Cout, Cin, 3, 3], b: [Cout], y: [N, Cout, OH, OW]; taps outside x read 0.
//
// The variant of conv2d_forward for adapters with subgroups of at least 8
// invocations (AdapterSummary::subgroups; benches/conv.rs times both). Same
// dispatches (one per group of 16 output channels and chunk of input
// channels) and same packed weights as conv2d_forward.
// Thread mapping (as conv2d_forward's): invocation t owns a strip of 8
// output pixels of one row, t → (n, oy, ox0 = 8·sx), for 16 output
// channels co0 .. co0+16 (8 named mat4x4 accumulators, aj[q] holding
// channels 4q .. 4q+3 of pixel j), summing input channels ci0 .. ci0+cc.
// It differs in how the operands arrive, the two costs that dominate
// conv2d_forward on lavapipe (docs/kernels/conv2d.md):
// - weights: every invocation needs the same 16 weights per tap, but a
//   uniform load at an index that depends on a loop variable is a gather
//   per component there. Here lane i of each 8 loads one vec4 (a quarter
//   of a tap's 16 weights) and subgroupShuffle hands it to all: a kernel row
//   (3 taps, 12 vec4) costs 2 vec4 loads instead of 12.
// - inputs: a strip's kernel row needs x[iy, ix0 .. ix0+10]. The texture
//   copy holds four elements per texel (Gpu::read_window), so input12
//   fetches four texels and shifts them into place: 4 fetches, not 10.
// The three taps of a kernel row are written out (kx unrolled): with the
// inputs in named vec4 there is no sliding window to shift.
// Bounds: inputs outside x (padding) read 0; pixels ≥ OW and channels ≥ Cout
// are not stored; invocations past the last strip compute with the rest of
// their subgroup (a shuffle needs every lane) and store nothing.
// mode bit 1: add the bias. ACCUMULATE (a pipeline constant): add into y
// instead of writing it. x_base / y_base: the windows' first elements
// (x_base 0 .. 3 for a texture copy).
// import texels, conv2d_rows

alias real = f32;
const REAL_BYTES: u32 = 4u;
const WINDOW: u32 = 65536u / REAL_BYTES; // values per 64 KiB weight window
// Add into y (true) or write it (false): fixed when the pipeline is
// compiled (gpu::Constants, conv2d.rs), so that the writing kernel carries
// no masked-off loads of y — on lavapipe a branch on a uniform runs both
// sides under a lane mask (docs/performance.md).
override ACCUMULATE: bool = false;

// The first 16 fields are ConvParams, as in every conv kernel (chunk unused here).
struct ConvForwardParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
    ci0: u32, cc: u32, co0: u32, mode: u32,
}

@group(0) @binding(0) var<uniform> params: ConvForwardParams;
@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var<uniform> wu: array<vec4<real>, WINDOW / 4u>;
@group(0) @binding(3) var<storage, read_write> y: array<real>;

// One tap's 16 weights as a matrix (column q:
// channels 4q .. 4q+3), from the vec4 that lanes first .. first+3 loaded.
fn tap_weights(v: vec4<real>, first: u32) -> mat4x4<real> {
    return mat4x4<real>(
        subgroupShuffle(v, first),
        subgroupShuffle(v, first + 1u),
        subgroupShuffle(v, first + 2u),
        subgroupShuffle(v, first + 3u),
    );
}

// a + x0·w0 + x1·w1 + x2·w2 (one pixel, one kernel row, 16 channels), in
// that order, column by column through fma. lavapipe still emits a multiply
// and an add for each (Mesa 22.3 lowers fma), but written this way the
// kernel spills less than with whole-matrix `a + x * w` (853 against 1,018
// vector moves in the compiled code) and ran faster.
fn row3(a: mat4x4<real>, x0: real, x1: real, x2: real, w0: mat4x4<real>, w1: mat4x4<real>, w2: mat4x4<real>) -> mat4x4<real> {
    return mat4x4<real>(
        fma(vec4<real>(x2), w2[0], fma(vec4<real>(x1), w1[0], fma(vec4<real>(x0), w0[0], a[0]))),
        fma(vec4<real>(x2), w2[1], fma(vec4<real>(x1), w1[1], fma(vec4<real>(x0), w0[1], a[1]))),
        fma(vec4<real>(x2), w2[2], fma(vec4<real>(x1), w1[2], fma(vec4<real>(x0), w0[2], a[2]))),
        fma(vec4<real>(x2), w2[3], fma(vec4<real>(x1), w1[3], fma(vec4<real>(x0), w0[3], a[3]))),
    );
}

// y at one output pixel (column ox) for the 16 channels co0 .. co0+15
// (element `at` holds channel co0): v[q][i] is channel co0 + 4q + i; added
// to y with ACCUMULATE. The loops have constant trip counts and no break,
// so they unroll and v is indexed by constants; indexing a private array of
// the accumulators by loop variables (as before) made every read a gather
// from memory: faster on the first layer, whose 3 input channels make the
// 128 stores per invocation most of the work.
fn store_pixel(at: u32, ox: u32, v: mat4x4<real>) {
    if (ox >= params.ow) {
        return;
    }
    let plane_out = params.oh * params.ow;
    for (var q = 0u; q < 4u; q = q + 1u) {
        for (var i = 0u; i < 4u; i = i + 1u) {
            if (params.co0 + 4u * q + i < params.cout) {
                let e = at + (4u * q + i) * plane_out;
                if (ACCUMULATE) {
                    y[e] = y[e] + v[q][i];
                } else {
                    y[e] = v[q][i];
                }
            }
        }
    }
}

@compute @workgroup_size(64)
fn conv2d_forward_3x3(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let sx_count = (params.ow + 7u) / 8u;
    let t = (wg.x + wg.y * nwg.x) * 64u + l;
    let valid = t < params.n * params.oh * sx_count;
    let ox0 = (t % sx_count) * 8u;
    let oy = (t / sx_count) % params.oh;
    let n = t / (sx_count * params.oh);
    let ix0 = i32(ox0) - i32(params.pad_left);
    let iy0 = i32(oy) - i32(params.pad_top);
    let last = WINDOW / 4u - 1u;

    var a0 = mat4x4<real>();
    var a1 = mat4x4<real>();
    var a2 = mat4x4<real>();
    var a3 = mat4x4<real>();
    var a4 = mat4x4<real>();
    var a5 = mat4x4<real>();
    var a6 = mat4x4<real>();
    var a7 = mat4x4<real>();
    for (var c = 0u; c < params.cc; c = c + 1u) {
        let plane = params.x_base + (n * params.cin + params.ci0 + c) * params.h * params.w;
        for (var ky = 0u; ky < 3u; ky = ky + 1u) {
            let r = input12(plane, iy0 + i32(ky), ix0);
            // taps (ky, 0) and (ky, 1) from lanes 0 .. 7, (ky, 2) from lanes 0 .. 3
            let wq = (c * 9u + ky * 3u) * 4u;
            let va = wu[min(wq + (lane & 7u), last)];
            let vb = wu[min(wq + 8u + (lane & 3u), last)];
            let w0 = tap_weights(va, 0u);
            let w1 = tap_weights(va, 4u);
            let w2 = tap_weights(vb, 0u);
            a0 = row3(a0, r.lo.x, r.lo.y, r.lo.z, w0, w1, w2);
            a1 = row3(a1, r.lo.y, r.lo.z, r.lo.w, w0, w1, w2);
            a2 = row3(a2, r.lo.z, r.lo.w, r.mid.x, w0, w1, w2);
            a3 = row3(a3, r.lo.w, r.mid.x, r.mid.y, w0, w1, w2);
            a4 = row3(a4, r.mid.x, r.mid.y, r.mid.z, w0, w1, w2);
            a5 = row3(a5, r.mid.y, r.mid.z, r.mid.w, w0, w1, w2);
            a6 = row3(a6, r.mid.z, r.mid.w, r.hi.x, w0, w1, w2);
            a7 = row3(a7, r.mid.w, r.hi.x, r.hi.y, w0, w1, w2);
        }
    }
    if (!valid) {
        return;
    }
    let last_col = WINDOW / 4u - 1u; // the bias sits in the window's last 16 values
    var bias = mat4x4<real>(wu[last_col - 3u], wu[last_col - 2u], wu[last_col - 1u], wu[last_col]);
    if ((params.mode & 1u) == 0u) {
        bias = mat4x4<real>();
    }
    let at = params.y_base + (n * params.cout + params.co0) * params.oh * params.ow + oy * params.ow + ox0;
    store_pixel(at, ox0, a0 + bias);
    store_pixel(at + 1u, ox0 + 1u, a1 + bias);
    store_pixel(at + 2u, ox0 + 2u, a2 + bias);
    store_pixel(at + 3u, ox0 + 3u, a3 + bias);
    store_pixel(at + 4u, ox0 + 4u, a4 + bias);
    store_pixel(at + 5u, ox0 + 5u, a5 + bias);
    store_pixel(at + 6u, ox0 + 6u, a6 + bias);
    store_pixel(at + 7u, ox0 + 7u, a7 + bias);
}
