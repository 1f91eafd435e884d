// reduce_partials: out[e] += Σ_{c < chunks} partial[c · len + e]
//
// The second half of every split reduction (conv2d weight and bias gradients):
// chunks of the summed index each wrote partial sums; this adds them up.
// Thread mapping: one invocation per output element e, looping over the
// chunks (neighbouring invocations read neighbouring partials).
// Bounds: invocations with e ≥ len return. Accumulates (+=).

alias real = f32;

struct ReduceParams {
    len: u32,
    chunks: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ReduceParams;
@group(0) @binding(1) var<storage, read> partial: array<real>;
@group(0) @binding(2) var<storage, read_write> out: array<real>;

@compute @workgroup_size(64)
fn reduce_partials(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let e = gid.x + gid.y * nwg.x * 64u;
    if (e >= params.len) {
        return;
    }
    var acc = real(0.0);
    for (var c = 0u; c < params.chunks; c = c + 1u) {
        acc = acc + partial[c * params.len + e];
    }
    out[e] = out[e] + acc;
}
