// maxpool_backward_windows: dx[argmax of window (oy, ox)] += dy[n, c, oy, ox]   (windows that do not overlap)
//
//   forward:  y[n, c, oy, ox] = max over the window at (oy·SH − PH, ox·SW − PW) of size KH×KW
//             (taps in the padding skipped)
//   backward: each window sends its whole gradient to the position of its
//             FIRST maximum in row-major scan order (ky, then kx), the rule
//             maxpool_forward and maxpool_backward follow.
//
// The variant of maxpool_backward for windows that do not overlap (SH ≥ KH and
// SW ≥ KW: Keras's default 2×2 at stride 2, the poster model's four pools).
// Then every input belongs to at most one window, so the window that owns it
// can write it without atomics, and only its maximum needs writing: dx
// accumulates (+=), so the other inputs of the window, and the inputs in gaps
// between windows, keep their value — adding 0 is not needed. Per window:
// KH·KW loads of x, one of dy, one read-modify-write of dx; maxpool_backward
// (one invocation per input, re-scanning every window that covers it) does
// KH·KW + 3 memory operations per *input*. benches/layers.rs measures both
// (docs/kernels/maxpool.md); the host picks this one whenever the windows do
// not overlap, on every adapter.
//
// Thread mapping: one invocation per OUTPUT element (window),
// o = gid.x + gid.y · num_workgroups.x · 256 → (plane = n·C + c, oy, ox).
// Bounds: invocations with o ≥ n·C·OH·OW return.
// Windows: x_base / y_base are the first elements of the x/dx and dy windows.
// import maxpool_window

alias real = f32;

@group(0) @binding(0) var<uniform> params: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn maxpool_backward_windows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = gid.x + gid.y * nwg.x * 256u;
    if (o >= params.n * params.c * params.oh * params.ow) {
        return;
    }
    let ox = o % params.ow;
    let oy = (o / params.ow) % params.oh;
    let plane = o / (params.ow * params.oh);
    let arg = window_argmax(plane, oy, ox);
    dx[arg] = dx[arg] + dy[params.y_base + o];
}
