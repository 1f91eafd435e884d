// bce_backward: dp += dloss · (p̂ − t) / (p̂ (1 − p̂)) / n   where ε ≤ p ≤ 1 − ε, else 0
//
//   forward:  loss = −(1/n) Σ [ t·log p̂ + (1 − t)·log(1 − p̂) ],  p̂ = clip(p, ε, 1 − ε)
//   backward: ∂/∂p̂ of the bracket is t/p̂ − (1 − t)/(1 − p̂) = (t − p̂)/(p̂(1 − p̂)),
//             so ∂loss/∂p = (p̂ − t)/(p̂(1 − p̂)) / n; the clip passes the gradient
//             inside [ε, 1 − ε] (bounds included) and blocks it outside, as
//             TensorFlow's clip_by_value does.
// dloss is the upstream gradient of the scalar loss (1 for a plain backward),
// read from the GPU so no value comes back to the host.
//
// Thread mapping: one invocation per element, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return. Gradients accumulate (+=).

alias real = f32;

struct BceParams {
    n: u32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: BceParams;
@group(0) @binding(1) var<storage, read> p: array<real>;
@group(0) @binding(2) var<storage, read> t: array<real>;
@group(0) @binding(3) var<storage, read> dloss: array<real>;
@group(0) @binding(4) var<storage, read_write> dp: array<real>;

@compute @workgroup_size(256)
fn bce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= params.n) {
        return;
    }
    let eps = real(params.epsilon);
    let one = real(1.0);
    let q = p[i];
    let inside = q >= eps && q <= one - eps;
    let g = (q - t[i]) / (q * (one - q)) / real(params.n);
    dp[i] = dp[i] + select(real(0.0), dloss[0] * g, inside);
}
