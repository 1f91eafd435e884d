// maxpool_forward: y[n, c, oy, ox] = max_{ky < KH, kx < KW} x[n, c, oy·SH + ky, ox·SW + kx]     (valid: no padding)
//
// Any pool size and stride (kernel ≠ stride included; windows may overlap or
// leave gaps). x: [N, C, H, W], y: [N, C, OH, OW], OH = ⌊(H − KH)/SH⌋ + 1.
// Thread mapping: one invocation per output element, i = gid.x + gid.y · num_workgroups.x · 256,
// decomposed as ((n·C + c)·OH + oy)·OW + ox; it scans its window row by row.
// Bounds: invocations with i ≥ n·C·OH·OW return.
// Windows: x_base / y_base are the first elements of the bound x and y windows
// (the host splits batches larger than one binding).

alias real = f32;

struct PoolParams {
    n: u32, c: u32, h: u32, w: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    oh: u32, ow: u32, x_base: u32, y_base: u32,
}

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
    let origin = params.x_base + (plane * params.h + oy * params.sh) * params.w + ox * params.sw;
    var best = x[origin];
    for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
        for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
            best = max(best, x[origin + ky * params.w + kx]);
        }
    }
    y[params.y_base + i] = best;
}
