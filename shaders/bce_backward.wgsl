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
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it. dloss is bound whole.

alias real = f32;

struct BceParams {
    n: u32,      // elements in this range
    epsilon: f32,
    base: u32,   // first element of the range in the bound window
    count: u32,  // all elements: the mean divides by this
}

@group(0) @binding(0) var<uniform> params: BceParams;
@group(0) @binding(1) var<storage, read> p: array<real>;
@group(0) @binding(2) var<storage, read> t: array<real>;
@group(0) @binding(3) var<storage, read> dloss: array<real>;
@group(0) @binding(4) var<storage, read_write> dp: array<real>;

@compute @workgroup_size(256)
fn bce_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= params.n) {
        return;
    }
    let i = params.base + r;
    let eps = real(params.epsilon);
    let one = real(1.0);
    let q = p[i];
    let inside = q >= eps && q <= one - eps;
    let g = (q - t[i]) / (q * (one - q)) / real(params.count);
    dp[i] = dp[i] + select(real(0.0), dloss[0] * g, inside);
}
