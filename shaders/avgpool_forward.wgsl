// avgpool_forward: y[n, c] = (1 / (H·W)) · Σ_{iy < H, ix < W} x[n, c, iy, ix]     (global average pooling)
//
// ResNet's last pooling (torchvision's AdaptiveAvgPool2d(1) and the flatten
// after it): x: [N, C, H, W] → y: [N, C].
// Thread mapping: one invocation per output element (plane n·C + c),
// i = gid.x + gid.y · num_workgroups.x · 256; it sums its plane's H·W
// values in order (ResNet-50's planes hold 7·7 = 49 at 224×224) and scales
// once, as the CPU reference does.
// Bounds: invocations with i ≥ planes return.
// Windows: x_base / y_base are the first elements of the bound x and y
// windows (the host splits batches larger than one binding).

alias real = f32;

struct AvgPoolParams {
    planes: u32, // n·C in this range
    hw: u32,     // H·W
    x_base: u32,
    y_base: u32,
}

@group(0) @binding(0) var<uniform> params: AvgPoolParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn avgpool_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.planes) {
        return;
    }
    let origin = params.x_base + i * params.hw;
    var sum = real(0.0);
    for (var k = 0u; k < params.hw; k = k + 1u) {
        sum = sum + x[origin + k];
    }
    y[params.y_base + i] = sum / real(params.hw);
}
