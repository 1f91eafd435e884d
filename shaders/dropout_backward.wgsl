// dropout_backward: dx += dy · keep / (1 − p), with the forward's mask recomputed from (seed, step, index)
//
// Inverted dropout: kept values are scaled by 1/(1 − p) so the expectation is
// unchanged and inference is the identity. The mask is not stored: it is a
// pure function of (seed, step, element index) — a PCG hash (O'Neill's
// pcg_hash, as in "Hash Functions for GPU Rendering", 2020) of those three
// 32-bit integers — so dropout_backward recomputes exactly the same mask,
// and the same seed gives the same mask on every adapter (integer arithmetic
// only).
// Thread mapping: one invocation per element, r = gid.x + gid.y · num_workgroups.x · 256;
// the element's global index (the hash input) is first + r.
// Bounds: invocations with r ≥ n return. Gradients accumulate (+=).
// Windows: tensors larger than one binding are processed in element ranges; every
// tensor is bound at the same aligned offset and `base` is the range's first element
// counted from it.
// import dropout_mask

alias real = f32;

struct DropoutParams {
    n: u32,      // elements in this range
    base: u32,   // first element of the range in the bound window
    first: u32,  // global index of the range's first element
    seed: u32,
    step: u32,
    rate: f32,   // p, the probability of dropping
    scale: f32,  // 1 / (1 − p)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DropoutParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read_write> dx: array<real>;

fn keep(index: u32) -> bool {
    return dropout_keep(index, params.seed, params.step, params.rate);
}

@compute @workgroup_size(256)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.x + gid.y * nwg.x * 256u;
    if (r >= params.n) {
        return;
    }
    let k = params.base + r;
    dx[k] = dx[k] + select(real(0.0), dy[k] * real(params.scale), keep(params.first + r));
}
