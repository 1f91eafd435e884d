// batchnorm_stats: per channel, mean and 1/√(var + ε) for the normalisation, and the moving statistics
//
// Training (params.training = 1): merges the chunks of batchnorm_partials with
// Chan et al.'s pairwise formula
//     n = na + nb,  δ = mb − ma,  mean = ma + δ·nb/n,  M2 = M2a + M2b + δ²·na·nb/n
// to the batch mean and the biased variance var = M2 / M (as Keras), writes
// stats[ch] = mean, stats[C + ch] = 1/√(var + ε), and updates the moving
// statistics in place: moving ← momentum·moving + (1 − momentum)·batch value
// (the variance as is, or times M/(M − 1) with params.unbiased = 1: PyTorch's
// unbiased one, computed here in the kernel's precision).
// Inference (params.training = 0): stats come from the moving statistics,
// which are left unchanged.
// Thread mapping: one invocation per channel, looping over the chunks.
// Bounds: invocations with ch ≥ C return.

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, unbiased: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> partial: array<real>;
@group(0) @binding(2) var<storage, read_write> moving_mean: array<real>;
@group(0) @binding(3) var<storage, read_write> moving_var: array<real>;
@group(0) @binding(4) var<storage, read_write> stats: array<real>;

@compute @workgroup_size(64)
fn batchnorm_stats(@builtin(global_invocation_id) gid: vec3<u32>) {
    let ch = gid.x;
    if (ch >= params.c) {
        return;
    }
    let eps = real(params.epsilon);
    if (params.training == 0u) {
        stats[ch] = moving_mean[ch];
        stats[params.c + ch] = real(1.0) / sqrt(moving_var[ch] + eps);
        return;
    }
    var n = real(0.0);
    var mean = real(0.0);
    var m2 = real(0.0);
    for (var k = 0u; k < params.chunks; k = k + 1u) {
        let o = (k * params.c + ch) * 3u;
        let nb = partial[o];
        let total = n + nb;
        let delta = partial[o + 1u] - mean;
        mean = mean + delta * nb / total;
        m2 = m2 + partial[o + 2u] + delta * delta * n * nb / total;
        n = total;
    }
    let variance = m2 / n;
    stats[ch] = mean;
    stats[params.c + ch] = real(1.0) / sqrt(variance + eps);
    let mo = real(params.momentum);
    moving_mean[ch] = mo * moving_mean[ch] + (real(1.0) - mo) * mean;
    // the batch variance as Keras keeps it, or unbiased (× M/(M − 1)) as
    // PyTorch's running_var; n = M here
    let kept = select(variance, m2 / (n - real(1.0)), params.unbiased == 1u && n > real(1.0));
    moving_var[ch] = mo * moving_var[ch] + (real(1.0) - mo) * kept;
}
