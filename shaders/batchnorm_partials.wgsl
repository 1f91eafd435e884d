// batchnorm_partials: per (chunk, channel): count, mean and M2 = Σ (x − mean)² of the chunk's values
//
// First half of the batch statistics: channel ch's values are x[n, ch, p] for
// every sample n and position p (M = N·plane of them; plane = H·W after a
// conv, 1 after a dense layer). They are cut into chunks of params.chunk
// values; each invocation walks one chunk in groups of up to four values
// that lie in one plane, and merges each group into its running (count,
// mean, M2) with Chan et al.'s update (δ = mean_g − mean, n = n_a + n_b:
// mean += δ·n_b/n, M2 += M2_g + δ²·n_a·n_b/n) — Welford's method four values
// at a time, which stays accurate where Σx² − (Σx)²/M would cancel
// catastrophically in f32. batchnorm_stats merges the chunks the same way.
// Thread mapping: invocation t = gid.x + gid.y · num_workgroups.x · 64 owns
// channel t % C of chunk t / C; writes partial[((chunk_offset + chunk)·C + ch)·3 + {0, 1, 2}].
// Bounds: invocations past the last chunk return; a group stops at the end
// of its chunk and of its plane.
// Windows: x is a texture copy of a window of params.n whole samples
// (Gpu::read_window; the host splits batches larger than one binding and
// gives each range its own chunk_offset), x_base the offset of its first
// element in the copy. A group is two texel fetches and a shift: on lavapipe
// a storage load is a loop over the SIMD lanes, a texel fetch one gather
// (docs/kernels/batchnorm.md). In f64 the host binds the buffer window and
// shaders::instantiate makes x a storage array.
// Fused relu (params.relu_input = 1): x holds z and the values are relu(z).
// import texels

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, unbiased: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<real>;

// The layer's input: x itself, or relu(x) when params.relu_input = 1 (the
// relu of the conv or dense layer before, fused into this batch norm).
fn input4(v: vec4<real>) -> vec4<real> {
    if (params.relu_input == 1u) {
        return max(v, vec4<real>(0.0));
    }
    return v;
}

@compute @workgroup_size(64)
fn batchnorm_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    let ch = t % params.c;
    let k = t / params.c;
    let m = params.n * params.plane;
    if (k * params.chunk >= m) {
        return;
    }
    let end = min((k + 1u) * params.chunk, m);
    var mean = real(0.0);
    var m2 = real(0.0);
    var count = real(0.0);
    var e = k * params.chunk;
    // (sample, position) of value e, stepped along with e: the walk divides
    // once, not per group (an integer division is a scalar loop over the
    // SIMD lanes on lavapipe)
    var sample = e / params.plane;
    var p = e - sample * params.plane;
    while (e < end) {
        let len = min(min(4u, end - e), params.plane - p);
        let i = params.x_base + (sample * params.c + ch) * params.plane + p;
        let v = input4(shift4(tex4_at(x, i >> 2u), tex4_at(x, (i >> 2u) + 1u), i & 3u));
        let valid = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(len);
        let nb = real(len);
        let mean_b = dot(select(vec4<real>(0.0), v, valid), vec4<real>(1.0)) / nb;
        let d = select(vec4<real>(0.0), v - mean_b, valid);
        let n = count + nb;
        let delta = mean_b - mean;
        mean = mean + delta * nb / n;
        m2 = m2 + dot(d, d) + delta * delta * count * nb / n;
        count = n;
        e = e + len;
        p = p + len;
        if (p == params.plane) {
            p = 0u;
            sample = sample + 1u;
        }
    }
    let o = ((params.chunk_offset + k) * params.c + ch) * 3u;
    partial[o] = count;
    partial[o + 1u] = mean;
    partial[o + 2u] = m2;
}
