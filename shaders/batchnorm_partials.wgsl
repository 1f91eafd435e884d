// batchnorm_partials: per (chunk, channel): count, mean and M2 = Σ (x − mean)² of the chunk's values
//
// First half of the batch statistics: channel ch's values are x[n, ch, p] for
// every sample n and position p (M = N·plane of them; plane = H·W after a
// conv, 1 after a dense layer). They are cut into chunks of params.chunk
// values; each invocation runs Welford's update over one chunk, which stays
// accurate where Σx² − (Σx)²/M would cancel catastrophically in f32.
// batchnorm_stats merges the chunks.
// Thread mapping: invocation t = gid.x + gid.y · num_workgroups.x · 64 owns
// channel t % C of chunk t / C; writes partial[((chunk_offset + chunk)·C + ch)·3 + {0, 1, 2}].
// Bounds: invocations past the last chunk return.
// Windows: x_base is the first element of the bound x window, which holds
// params.n whole samples (the host splits batches larger than one binding and
// gives each range its own chunk_offset).
// Fused relu (params.relu_input = 1): x holds z and the values are relu(z).

alias real = f32;

struct BnParams {
    n: u32, c: u32, plane: u32, x_base: u32,
    y_base: u32, chunk: u32, chunk_offset: u32, chunks: u32,
    epsilon: f32, momentum: f32, training: u32, count: u32,
    relu_input: u32, dx_base: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: BnParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read_write> partial: array<real>;

// The layer's input: x itself, or relu(x) when params.relu_input = 1 (the
// relu of the conv or dense layer before, fused into this batch norm).
fn input_value(v: real) -> real {
    if (params.relu_input == 1u) {
        return max(v, real(0.0));
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
    for (var e = k * params.chunk; e < end; e = e + 1u) {
        let v = input_value(x[params.x_base + ((e / params.plane) * params.c + ch) * params.plane + e % params.plane]);
        count = count + real(1.0);
        let d = v - mean;
        mean = mean + d / count;
        m2 = m2 + d * (v - mean);
    }
    let o = ((params.chunk_offset + k) * params.c + ch) * 3u;
    partial[o] = count;
    partial[o + 1u] = mean;
    partial[o + 2u] = m2;
}
