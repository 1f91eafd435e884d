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
// Thread mapping: one invocation per four parameters (one texel),
// r = gid.x + gid.y · num_workgroups.x · 256 → elements 4r .. 4r + 3.
// Inputs through textures: g, p, m and v are read from texture copies of
// the whole tensors (Gpu::read_window), one fetch per four elements. On
// lavapipe a storage load at a per-invocation index is a loop over the SIMD
// lanes through memory (several texel fetches per element), and the four
// loads per parameter were most of this kernel's time (docs/performance.md).
// The writes go to the storage buffers; the copies are snapshots taken
// before the kernel, so reading p, m, v from them while writing is safe.
// Bounds: elements ≥ n are not written (a tensor's buffer and its copy are
// whole texels long, so the last texel's fetch stays inside). In f64 the
// host binds the buffers and shaders::instantiate makes the textures
// storage arrays.
// import texels

alias real = f32;

struct AdamParams {
    n: u32,
    alpha: f32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: AdamParams;
@group(0) @binding(1) var g_in: texture_2d_array<f32>;
@group(0) @binding(2) var p_in: texture_2d_array<f32>;
@group(0) @binding(3) var m_in: texture_2d_array<f32>;
@group(0) @binding(4) var v_in: texture_2d_array<f32>;
@group(0) @binding(5) var<storage, read_write> p: array<real>;
@group(0) @binding(6) var<storage, read_write> m: array<real>;
@group(0) @binding(7) var<storage, read_write> v: array<real>;
@group(0) @binding(8) var<storage, read> guard: array<u32>;

@compute @workgroup_size(256)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (4u * r >= params.n || guard[0] != 0u) {
        return;
    }
    let g4 = tex4_at(g_in, r);
    let m4 = tex4_at(m_in, r);
    let v4 = tex4_at(v_in, r);
    let mi = m4 + (g4 - m4) * (real(1.0) - real(params.beta1));
    let vi = v4 + (g4 * g4 - v4) * (real(1.0) - real(params.beta2));
    let pi = tex4_at(p_in, r) - real(params.alpha) * mi / (sqrt(vi) + real(params.epsilon));
    // constant component indices: the loop unrolls (no gather from a private array)
    for (var j = 0u; j < 4u; j = j + 1u) {
        let i = 4u * r + j;
        if (i < params.n) {
            m[i] = mi[j];
            v[i] = vi[j];
            p[i] = pi[j];
        }
    }
}
