// dropout_mask: which elements inverted dropout keeps. One hash of
// (index, seed, step) per element, so that the forward, the backward and the
// fused bnpool kernels draw the same mask without storing it:
//
//   keep(i) = pcg(i ^ pcg(seed ^ pcg(step))) / 2^32 ≥ rate
//
// pcg_hash is the PCG-RXS-M-XS 32-bit output permutation (Jarzynski &
// Olano, "Hash Functions for GPU Rendering", 2020).
// A shader uses this file with `// import dropout_mask`.
// Thread mapping: none (functions only). Bounds: none.

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Whether the element with global index `index` is kept.
fn dropout_keep(index: u32, seed: u32, step: u32, rate: f32) -> bool {
    let h = pcg_hash(index ^ pcg_hash(seed ^ pcg_hash(step)));
    return f32(h) * 2.3283064365386963e-10 >= rate; // h / 2^32
}
