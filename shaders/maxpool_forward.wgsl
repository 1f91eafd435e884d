// maxpool_forward: y[n, c, oy, ox] = max_{ky < KH, kx < KW} x[n, c, oy·SH + ky − PH, ox·SW + kx − PW]
//
// Any pool size, stride and padding (kernel ≠ stride included; windows may
// overlap or leave gaps). Taps in the padding are skipped: padding never
// wins the max (PyTorch's MaxPool2d(padding=p), ResNet's 3×3 stride-2 pool).
// x: [N, C, H, W], y: [N, C, OH, OW], OH = ⌊(H + 2·PH − KH)/SH⌋ + 1.
// Thread mapping: one invocation per output element, i = gid.x + gid.y · num_workgroups.x · 256,
// decomposed as ((n·C + c)·OH + oy)·OW + ox; it scans its window row by row
// (window_argmax, shared with the backward kernels).
// Bounds: invocations with i ≥ n·C·OH·OW return.
// Windows: x_base / y_base are the first elements of the bound x and y windows
// (the host splits batches larger than one binding).
// import maxpool_window

alias real = f32;

@group(0) @binding(0) var<uniform> params: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn maxpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n * params.c * params.oh * params.ow) {
        return;
    }
    let ox = i % params.ow;
    let oy = (i / params.ow) % params.oh;
    let plane = i / (params.ow * params.oh); // n·C + c
    y[params.y_base + i] = x[window_argmax(plane, oy, ox)];
}
