// bce_forward: loss = −(1/n) Σ_i [ t_i·log(p̂_i) + (1 − t_i)·log(1 − p̂_i) ],  p̂ = clip(p, ε, 1 − ε)
//
// Keras binary_crossentropy on probabilities: ε = 1e-7, the mean over the
// labels and then over the batch (= the mean over all n = batch·labels values).
//
// Thread mapping: a single workgroup of 256 invocations. Invocation l sums the
// elements l, l + 256, l + 512, … ; the 256 partial sums are then halved in
// workgroup memory (8 barriers) and invocation 0 writes loss[0].
// Bounds: the strided loop stops at n; any n ≥ 1 works in one dispatch.
// Numerics: partial sums in f32; log is taken only of values ≥ ε.

alias real = f32;

struct BceParams {
    n: u32,      // elements
    epsilon: f32,
    base: u32,   // unused here: the forward binds whole tensors
    count: u32,  // = n: the mean divides by this
}

@group(0) @binding(0) var<uniform> params: BceParams;
@group(0) @binding(1) var<storage, read> p: array<real>;
@group(0) @binding(2) var<storage, read> t: array<real>;
@group(0) @binding(3) var<storage, read_write> loss: array<real>;

var<workgroup> partial: array<real, 256>;

@compute @workgroup_size(256)
fn bce_forward(@builtin(local_invocation_index) l: u32) {
    let eps = real(params.epsilon);
    let one = real(1.0);
    var acc = real(0.0);
    for (var i = l; i < params.n; i = i + 256u) {
        let q = clamp(p[i], eps, one - eps);
        acc = acc + t[i] * log(q) + (one - t[i]) * log(one - q);
    }
    partial[l] = acc;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride = stride / 2u) {
        if (l < stride) {
            partial[l] = partial[l] + partial[l + stride];
        }
        workgroupBarrier();
    }
    if (l == 0u) {
        loss[0] = -partial[0] / real(params.count);
    }
}
