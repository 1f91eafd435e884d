// maxpool_backward: dx[n, c, iy, ix] += Σ over the windows whose maximum is at (iy, ix) of dy[window]
//
//   forward:  y[n, c, oy, ox] = max over the window at (oy·SH, ox·SW) of size KH×KW
//   backward: each window sends its whole gradient to the position of its
//             maximum. Ties: the FIRST maximum in row-major scan order (ky, then
//             kx) wins, the rule maxpool_forward's scan also follows; the other
//             tied positions get nothing.
//
// Thread mapping: one invocation per INPUT element (i = gid.x + gid.y ·
// num_workgroups.x · 256): it visits the windows that contain it (oy from
// ⌈(iy − KH + 1)/SH⌉ to ⌊iy/SH⌋, likewise ox), re-scans each window for its
// first maximum and adds dy when that is itself. Nothing is saved by the
// forward pass and no two invocations write the same element, so overlapping
// windows (kernel > stride) need no atomics. oy_lo = ⌈(iy − KH + 1)/SH⌉ keeps
// only windows that reach (iy, ix), so elements in gaps (kernel < stride) get 0.
// Bounds: invocations with i ≥ n·C·H·W return.
// Windows: x_base / y_base are the first elements of the x/dx and dy windows.
// Gradients accumulate (+=).

alias real = f32;

struct PoolParams {
    n: u32, c: u32, h: u32, w: u32,
    kh: u32, kw: u32, sh: u32, sw: u32,
    oh: u32, ow: u32, x_base: u32, y_base: u32,
}

@group(0) @binding(0) var<uniform> params: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn maxpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n * params.c * params.h * params.w) {
        return;
    }
    let ix = i % params.w;
    let iy = (i / params.w) % params.h;
    let plane = i / (params.w * params.h);
    let oy_lo = select(0u, (iy + params.sh - params.kh) / params.sh, iy + 1u >= params.kh);
    let ox_lo = select(0u, (ix + params.sw - params.kw) / params.sw, ix + 1u >= params.kw);
    let oy_hi = min(iy / params.sh, params.oh - 1u);
    let ox_hi = min(ix / params.sw, params.ow - 1u);
    var g = real(0.0);
    for (var oy = oy_lo; oy <= oy_hi; oy = oy + 1u) {
        for (var ox = ox_lo; ox <= ox_hi; ox = ox + 1u) {
            // the window's first maximum, in the forward's scan order
            let origin = params.x_base + (plane * params.h + oy * params.sh) * params.w + ox * params.sw;
            var best = x[origin];
            var arg = 0u;
            for (var ky = 0u; ky < params.kh; ky = ky + 1u) {
                for (var kx = 0u; kx < params.kw; kx = kx + 1u) {
                    let v = x[origin + ky * params.w + kx];
                    if (v > best) {
                        best = v;
                        arg = ky * params.w + kx;
                    }
                }
            }
            if (origin + arg == params.x_base + i) {
                g = g + dy[params.y_base + (plane * params.oh + oy) * params.ow + ox];
            }
        }
    }
    dx[params.x_base + i] = dx[params.x_base + i] + g;
}
