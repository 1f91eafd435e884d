// conv2d_dilate: d[n, co, j, i] = dy[n, co, j / s, i / s] where s divides j and i, else 0
//
// The strided convolution's input gradient, step one: dy spread out by the
// stride, zeros between, d: [N, Cout, (OH − 1)·s + 1, (OW − 1)·s + 1] (or
// larger: a strided 1×1 convolution spreads its GEMM's result, Wᵀ·dy, over
// the whole of dx, zeros past the source too).
// Then dx = the stride-1 correlation of d with the flipped, transposed
// kernel (padding KH − 1 − pt), which the fast forward kernels compute
// (conv2d.rs, "Strided input gradients"): s² times the useful
// multiply-adds, at the forward kernels' rate instead of the direct
// kernel's (docs/kernels/conv2d.md has both measured).
// Fields of ConvParams as used here: n (samples in the window), cout
// (channels), oh, ow (dy's size), stride, h, w (d's size), y_base (dy's
// window), x_base (d's window).
// Thread mapping: one invocation per element of d, i = gid.x + gid.y ·
// num_workgroups.x · 256, decomposed as ((n·Cout + co)·H + j)·W + i.
// Bounds: invocations past N·Cout·H·W return; every element of d is written.

alias real = f32;

struct ConvParams {
    n: u32, cin: u32, h: u32, w: u32,
    cout: u32, kh: u32, kw: u32, stride: u32,
    oh: u32, ow: u32, pad_top: u32, pad_left: u32,
    x_base: u32, y_base: u32, chunk: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: ConvParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read_write> d: array<real>;

@compute @workgroup_size(256)
fn conv2d_dilate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let k = gid.x + gid.y * nwg.x * 256u;
    if (k >= params.n * params.cout * params.h * params.w) {
        return;
    }
    let i = k % params.w;
    let j = (k / params.w) % params.h;
    let plane = k / (params.w * params.h);
    let s = params.stride;
    // on the stride's grid and inside the source (d may extend past it:
    // a strided 1×1 convolution's input gradient fills all of dx)
    let on_grid = j % s == 0u && i % s == 0u && j / s < params.oh && i / s < params.ow;
    let src = params.y_base + (plane * params.oh + j / s) * params.ow + i / s;
    d[params.x_base + k] = select(real(0.0), dy[min(src, arrayLength(&dy) - 1u)], on_grid);
}
