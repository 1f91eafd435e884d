// batchnorm_forward: y = γ[ch] · (x − mean[ch]) · invstd[ch] + β[ch]
//
// mean and invstd = 1/√(var + ε) come from batchnorm_stats: the batch's in
// training, the moving statistics in inference. x, y: [N, C, plane].
// Thread mapping: one invocation per strip of 8 consecutive elements of one
// (sample, channel) plane: t = gid.x + gid.y · num_workgroups.x · 256 →
// row = t / S (S = ⌈plane/8⌉ strips per plane), channel row % C, elements
// 8·(t % S) .. +8 of the row (windows start on a sample boundary). The
// channel's scale γ·invstd and shift β − mean·γ·invstd are loaded once per
// strip: one element per invocation loaded them for every element, and on
// lavapipe every storage load is a gather over the SIMD lanes (slower
// at the poster model's four blocks, benches/layers.rs).
// Bounds: invocations with t ≥ n·C·S return; elements past the plane's end
// are skipped.
// Windows: x_base / y_base are the first elements of the x and y windows.
// Fused relu (params.relu_input = 1): x holds z and the input is relu(z).
// import batchnorm

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, unbiased: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> gamma: array<real>;
@group(0) @binding(3) var<storage, read> beta: array<real>;
@group(0) @binding(4) var<storage, read> stats: array<real>;
@group(0) @binding(5) var<storage, read_write> y: array<real>;

@compute @workgroup_size(256)
fn batchnorm_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 256u;
    let strips = (params.plane + 7u) / 8u;
    if (t >= params.n * params.c * strips) {
        return;
    }
    let row = t / strips;
    let ch = row % params.c;
    let scale = gamma[ch] * stats[params.c + ch];
    let shift = beta[ch] - stats[ch] * scale;
    let e0 = (t % strips) * 8u;
    let e_end = min(e0 + 8u, params.plane);
    let first = row * params.plane;
    for (var e = e0; e < e_end; e = e + 1u) {
        y[params.y_base + first + e] = input_value(x[params.x_base + first + e]) * scale + shift;
    }
}
