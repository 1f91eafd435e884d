// adam_step: one Adam update, in place (Keras's formulation)
//
//   m ← m + (g − m)(1 − β1)
//   v ← v + (g² − v)(1 − β2)
//   p ← p − α · m / (√v + ε),     α = lr · √(1 − β2ᵗ) / (1 − β1ᵗ)   (bias correction, on the host in f64)
//
// Guard: guard[0] counts the non-finite values found in this step's loss and
// gradients (nonfinite_count); when it is not zero nothing is updated, so a
// diverging step never reaches the weights or the moments.
//
// Thread mapping: one invocation per parameter, i = gid.x + gid.y · num_workgroups.x · 256.
// Bounds: invocations with i ≥ n return.
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it.

alias real = f32;

struct AdamParams {
    n: u32,
    alpha: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    base: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: AdamParams;
@group(0) @binding(1) var<storage, read> g: array<real>;
@group(0) @binding(2) var<storage, read_write> p: array<real>;
@group(0) @binding(3) var<storage, read_write> m: array<real>;
@group(0) @binding(4) var<storage, read_write> v: array<real>;
@group(0) @binding(5) var<storage, read> guard: array<u32>;

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= params.n || guard[0] != 0u) {
        return;
    }
    let i = params.base + r;
    let gi = g[i];
    let mi = m[i] + (gi - m[i]) * (real(1.0) - real(params.beta1));
    let vi = v[i] + (gi * gi - v[i]) * (real(1.0) - real(params.beta2));
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - real(params.alpha) * mi / (sqrt(vi) + real(params.epsilon));
}
