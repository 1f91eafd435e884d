// peak_fma: the adapter's multiply-add throughput, for the profiler's "share of peak"
//
//   out[t] = Σ_j Σ_q (a_j after `iters` rounds of a_j ← a_j + r_j · m), read back so nothing is dead code
//   Per round: 8 mat4x4 multiply-adds = 128 multiply-adds = 256 FLOP per invocation; no memory traffic.
//
// Thread mapping: invocation t = gid.x + gid.y·num_workgroups.x·64 owns one
// independent chain of accumulators (8 named mat4x4, as the conv kernels hold
// theirs) seeded from t; `iters` rounds of register-only arithmetic.
// Bounds: invocations with t ≥ count return.

alias real = f32;

struct PeakParams {
    iters: u32,
    count: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: PeakParams;
@group(0) @binding(1) var<storage, read_write> out: array<real>;

@compute @workgroup_size(64)
fn peak_fma(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.x + gid.y * nwg.x * 64u;
    if (t >= params.count) {
        return;
    }
    let seed = real(t % 7u) * 1e-3;
    let m = mat4x4<real>(
        vec4<real>(seed, 0.5, 0.25, 0.125), vec4<real>(0.5, seed, 0.125, 0.25),
        vec4<real>(0.25, 0.125, seed, 0.5), vec4<real>(0.125, 0.25, 0.5, seed),
    );
    var a0 = mat4x4<real>();
    var a1 = mat4x4<real>();
    var a2 = mat4x4<real>();
    var a3 = mat4x4<real>();
    var a4 = mat4x4<real>();
    var a5 = mat4x4<real>();
    var a6 = mat4x4<real>();
    var a7 = mat4x4<real>();
    var r = seed;
    for (var i = 0u; i < params.iters; i = i + 1u) {
        a0 = a0 + r * m;
        a1 = a1 + (r + 1.0) * m;
        a2 = a2 + (r + 2.0) * m;
        a3 = a3 + (r + 3.0) * m;
        a4 = a4 + (r + 4.0) * m;
        a5 = a5 + (r + 5.0) * m;
        a6 = a6 + (r + 6.0) * m;
        a7 = a7 + (r + 7.0) * m;
        r = r * 0.999;
    }
    let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    out[t] = dot(s[0] + s[1] + s[2] + s[3], vec4<real>(1.0));
}
