// batchnorm_backward_params: dβ[ch] += Σ dy,  dγ[ch] += Σ dy·x̂
//
//   forward: y = γ·x̂ + β, so ∂L/∂β = Σ dy and ∂L/∂γ = Σ dy·x̂ over the channel's M values;
//   the sums were reduced into sums[0..C] and sums[C..2C].
// Thread mapping: one invocation per channel.
// Bounds: invocations with ch ≥ C return. Gradients accumulate (+=).

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, unbiased: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> sums: array<real>;
@group(0) @binding(2) var<storage, read_write> dgamma: array<real>;
@group(0) @binding(3) var<storage, read_write> dbeta: array<real>;

@compute @workgroup_size(64)
fn batchnorm_backward_params(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    if (ch >= params.c) {
        return;
    }
    dbeta[ch] = dbeta[ch] + sums[ch];
    dgamma[ch] = dgamma[ch] + sums[params.c + ch];
}
