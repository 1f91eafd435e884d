// avgpool_backward: dx[n, c, iy, ix] += dy[n, c] / (H·W)
//
//   forward:  y[n, c] = mean over the plane of x[n, c]
//   backward: every element of a plane receives an equal share of its
//             output's gradient.
//
// Thread mapping: one invocation per INPUT element, i = gid.x + gid.y ·
// num_workgroups.x · 256, of plane i / (H·W).
// Bounds: invocations with i ≥ planes·H·W return.
// Windows: x_base / y_base are the first elements of the bound dx and dy
// windows. Gradients accumulate (+=).

alias real = f32;

struct AvgPoolParams {
    planes: u32, // n·C in this range
    hw: u32,     // H·W
    x_base: u32,
    y_base: u32,
}

@group(0) @binding(0) var<uniform> params: AvgPoolParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(256)
fn avgpool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.planes * params.hw) {
        return;
    }
    let k = params.x_base + i;
    dx[k] = dx[k] + dy[params.y_base + i / params.hw] / real(params.hw);
}
