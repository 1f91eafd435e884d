// conv2d_forward: y = conv(x, w) + b        (NCHW, cross-correlation as in Keras/PyTorch)
//
//   y[n, co, oy, ox] = b[co] + Σ_{ci, ky, kx} x[n, ci, oy·s + ky − pt, ox·s + kx − pl] · w[co, ci, ky, kx]
//   x: [N, Cin, H, W], w: [Cout, Cin, KH, KW], b: [Cout], y: [N, Cout, OH, OW]; taps outside x read 0.
//
// The same kernel computes conv2d_backward_input for stride 1 (dx += full
// correlation of dy with the flipped, transposed kernel; see conv2d.rs), so
// "x", "y", "Cin", "Cout" below are the roles, not always the tensors.
//
// Thread mapping (register-blocked implicit GEMM, no workgroup memory):
// one dispatch per group of 16 output channels (co0 .. co0+16) and chunk of
// input channels (ci0 .. ci0+cc). Invocation t owns a strip of 8 consecutive
// output pixels of one row, t → (n, oy, ox0 = 8·sx), for the group's 16
// channels: 8 × 16 accumulators, one mat4x4 per pixel (aj[q] holds channels
// 4q .. 4q+3 of pixel j), r0..r7 the strip's inputs for the current tap.
// They are named variables, not arrays: lavapipe (Mesa 22.3) keeps private
// arrays in memory even when every index is constant after unrolling, which
// measured slower (docs/kernels/conv2d.md).
// Weights come from `wu`, a 64 KiB uniform window (WINDOW values: 16384 in
// f32, 8192 in f64) holding the chunk packed by
// conv2d_pack_weights as [ci − ci0][ky][kx][16 channels] (four vec4 per tap;
// the group's 16 biases in the last vec4s). Every invocation of a dispatch
// reads the same weights: a uniform load, a broadcast on SIMD adapters.
// Inputs come through a texture (x is read with textureLoad from a texture
// copy of its window, Gpu::read_window; in f64, where textures hold no f64,
// the host binds the buffer window and shaders::instantiate makes x a
// storage array, tex_at(x, i) x[i]). On lavapipe a texel fetch is a gather,
// a storage load a loop over the SIMD lanes (docs/kernels/conv2d.md has
// both measured). For stride 1 the 8 pixels of a strip read 8
// neighbouring inputs per tap, and moving to the next kx shifts them by one,
// so each (ci, ky) row costs 8 + KW − 1 loads for 16·8·KW multiply-adds
// (on lavapipe a storage load costs about 50 multiply-adds — it runs as a
// loop over the SIMD lanes — while a uniform load costs almost nothing;
// docs/performance.md). Other strides reload the 8 inputs per tap. The two
// loop nests below differ only there; one nest with both branches inside
// the kx loop measured slower on lavapipe, so both stay.
// Bounds: inputs outside x (padding) read 0; pixels ≥ OW and channels ≥ Cout
// are not stored. mode bit 1: add the bias. ACCUMULATE (a pipeline
// constant): add into y instead of writing it (later input chunks, and
// backward-input into a gradient other ops add to).
// Windows: x and y may be windows of larger tensors; x_base / y_base are the
// window's first element (the host splits batches larger than one binding;
// x_base is 0 for a texture copy, which starts at the window).
// import texels

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

// x[n, ci, iy, ix] of the window, or 0 outside the input.
fn input_at(plane: u32, iy: i32, ix: i32) -> real {
    let inside = iy >= 0 && iy < i32(params.h) && ix >= 0 && ix < i32(params.w);
    let idx = plane + u32(clamp(iy, 0, i32(params.h) - 1)) * params.w
        + u32(clamp(ix, 0, i32(params.w) - 1));
    return select(real(0.0), tex_at(x, idx), inside);
}

@compute @workgroup_size(64)
fn conv2d_forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let sx_count = (params.ow + 7u) / 8u;
    let t = (wg.x + wg.y * nwg.x) * 64u + l;
    if (t >= params.n * params.oh * sx_count) {
        return;
    }
    let ox0 = (t % sx_count) * 8u;
    let oy = (t / sx_count) % params.oh;
    let n = t / (sx_count * params.oh);
    let s = params.stride;
    let ix0 = i32(ox0 * s) - i32(params.pad_left);
    let taps = params.kh * params.kw;

    var a0 = mat4x4<real>();
    var a1 = mat4x4<real>();
    var a2 = mat4x4<real>();
    var a3 = mat4x4<real>();
    var a4 = mat4x4<real>();
    var a5 = mat4x4<real>();
    var a6 = mat4x4<real>();
    var a7 = mat4x4<real>();
    var r0 = real(0.0);
    var r1 = real(0.0);
    var r2 = real(0.0);
    var r3 = real(0.0);
    var r4 = real(0.0);
    var r5 = real(0.0);
    var r6 = real(0.0);
    var r7 = real(0.0);
    if (s == 1u) {
        for (var c = 0u; c < params.cc; c = c + 1u) {
            let plane = params.x_base + (n * params.cin + params.ci0 + c) * params.h * params.w;
            for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
                let iy = i32(oy * s + ky) - i32(params.pad_top);
                r0 = input_at(plane, iy, ix0 + 0);
                r1 = input_at(plane, iy, ix0 + 1);
                r2 = input_at(plane, iy, ix0 + 2);
                r3 = input_at(plane, iy, ix0 + 3);
                r4 = input_at(plane, iy, ix0 + 4);
                r5 = input_at(plane, iy, ix0 + 5);
                r6 = input_at(plane, iy, ix0 + 6);
                r7 = input_at(plane, iy, ix0 + 7);
                for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
                    let wq = ((c * taps) + ky * params.kw + kx) * 4u;
                    let wm = mat4x4<real>(wu[wq], wu[wq + 1u], wu[wq + 2u], wu[wq + 3u]);
                    a0 = a0 + r0 * wm;
                    a1 = a1 + r1 * wm;
                    a2 = a2 + r2 * wm;
                    a3 = a3 + r3 * wm;
                    a4 = a4 + r4 * wm;
                    a5 = a5 + r5 * wm;
                    a6 = a6 + r6 * wm;
                    a7 = a7 + r7 * wm;
                    r0 = r1;
                    r1 = r2;
                    r2 = r3;
                    r3 = r4;
                    r4 = r5;
                    r5 = r6;
                    r6 = r7;
                    r7 = input_at(plane, iy, ix0 + i32(8u + kx));
                }
            }
        }
    } else {
        for (var c = 0u; c < params.cc; c = c + 1u) {
            let plane = params.x_base + (n * params.cin + params.ci0 + c) * params.h * params.w;
            for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
                let iy = i32(oy * s + ky) - i32(params.pad_top);
                for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
                    r0 = input_at(plane, iy, ix0 + i32(0u * s + kx));
                    r1 = input_at(plane, iy, ix0 + i32(1u * s + kx));
                    r2 = input_at(plane, iy, ix0 + i32(2u * s + kx));
                    r3 = input_at(plane, iy, ix0 + i32(3u * s + kx));
                    r4 = input_at(plane, iy, ix0 + i32(4u * s + kx));
                    r5 = input_at(plane, iy, ix0 + i32(5u * s + kx));
                    r6 = input_at(plane, iy, ix0 + i32(6u * s + kx));
                    r7 = input_at(plane, iy, ix0 + i32(7u * s + kx));
                    let wq = ((c * taps) + ky * params.kw + kx) * 4u;
                    let wm = mat4x4<real>(wu[wq], wu[wq + 1u], wu[wq + 2u], wu[wq + 3u]);
                    a0 = a0 + r0 * wm;
                    a1 = a1 + r1 * wm;
                    a2 = a2 + r2 * wm;
                    a3 = a3 + r3 * wm;
                    a4 = a4 + r4 * wm;
                    a5 = a5 + r5 * wm;
                    a6 = a6 + r6 * wm;
                    a7 = a7 + r7 * wm;
                }
            }
        }
    }
    var acc = array<mat4x4<real>, 8>(a0, a1, a2, a3, a4, a5, a6, a7);

    let plane_out = params.oh * params.ow;
    let use_bias = (params.mode & 1u) != 0u;
    for (var q = 0u; q < 4u; q = q + 1u) {
        let bias = select(vec4<real>(0.0), wu[WINDOW / 4u - 4u + q], use_bias);
        for (var i = 0u; i < 4u; i = i + 1u) {
            let co = params.co0 + 4u * q + i;
            if (co >= params.cout) {
                break;
            }
            let row = params.y_base + (n * params.cout + co) * plane_out + oy * params.ow;
            for (var j = 0u; j < 8u; j = j + 1u) {
                if (ox0 + j < params.ow) {
                    let v = acc[j][q][i] + bias[i];
                    if (ACCUMULATE) {
                        y[row + ox0 + j] = y[row + ox0 + j] + v;
                    } else {
                        y[row + ox0 + j] = v;
                    }
                }
            }
        }
    }
}
