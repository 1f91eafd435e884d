// maxpool_backward: dx[n, c, iy, ix] += Σ over the windows whose maximum is at (iy, ix) of dy[window]
//
//   forward:  y[n, c, oy, ox] = max over the window at (oy·SH − PH, ox·SW − PW) of size KH×KW
//             (taps in the padding skipped)
//   backward: each window sends its whole gradient to the position of its
//             maximum. Ties: the FIRST maximum in row-major scan order (ky, then
//             kx) wins, the rule maxpool_forward's scan also follows; the other
//             tied positions get nothing.
//
// Thread mapping: one invocation per INPUT element (i = gid.x + gid.y ·
// num_workgroups.x · 256): it visits the windows that contain it (oy from
// ⌈(iy + PH − KH + 1)/SH⌉ to ⌊(iy + PH)/SH⌋, likewise ox), re-scans each window for its
// first maximum and adds dy when that is itself. Nothing is saved by the
// forward pass and no two invocations write the same element, so overlapping
// windows (kernel > stride) need no atomics. oy_lo keeps
// only windows that reach (iy, ix), so elements in gaps (kernel < stride) get 0.
// Bounds: invocations with i ≥ n·C·H·W return.
// Windows: x_base / y_base are the first elements of the x/dx and dy windows.
// Gradients accumulate (+=).
// import maxpool_window

alias real = f32;

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
    // windows with oy·SH − PH ≤ iy ≤ oy·SH − PH + KH − 1, within [0, OH)
    let py = iy + params.ph;
    let px = ix + params.pw;
    let oy_lo = select(0u, (py + params.sh - params.kh) / params.sh, py + 1u >= params.kh);
    let ox_lo = select(0u, (px + params.sw - params.kw) / params.sw, px + 1u >= params.kw);
    let oy_hi = min(py / params.sh, params.oh - 1u);
    let ox_hi = min(px / params.sw, params.ow - 1u);
    var g = real(0.0);
    for (var oy = oy_lo; oy <= oy_hi; oy = oy + 1u) {
        for (var ox = ox_lo; ox <= ox_hi; ox = ox + 1u) {
            if (window_argmax(plane, oy, ox) == params.x_base + i) {
                g = g + dy[params.y_base + (plane * params.oh + oy) * params.ow + ox];
            }
        }
    }
    dx[params.x_base + i] = dx[params.x_base + i] + g;
}
