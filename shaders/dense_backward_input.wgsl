// dense_backward_input: dx += dy · wᵀ
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: dx[r, k] += Σ_c dy[r, c] · w[k, c]          dy: [rows, cols], w: [k, cols], dx: [rows, k]
//
// Thread mapping (register blocking, no workgroup memory — GUIDE §3: shared-memory
// tiling is slower on lavapipe, and 8×8 tiles run faster than 4×4 there,
// see docs/kernels/dense.md): invocation (gid.x, gid.y) owns the 8×8 output
// tile dx[8·gid.y .. +8, 8·gid.x .. +8]; each step covers four values of c:
// it reads dy[row, c .. c+3] for the tile's 8 rows and w[k, c .. c+3] for its
// 8 values of k (one vec4 each: both run along c) and does 256 multiply-adds
// (64 dot products of four), so the accumulators are read and written once
// per four c.
// The 64 accumulators live in 16 vec4s: acc_i_lo holds columns 0–3 of tile row i,
// acc_i_hi columns 4–7. The tile is unrolled by hand (naga does not unroll loops).
// Inputs through textures: both inputs are read from texture copies
// (Gpu::read_window), four elements per texel fetch; a_base / b_base are
// their first elements in the copies. On lavapipe a storage load is a loop
// over the SIMD lanes and a texel fetch one gather: this cut the loads per
// 64 multiply-adds from 16 to 8 (16 vec4 of two fetches per 4 c) (docs/kernels/dense.md). In f64 the host
// binds the buffers and shaders::instantiate makes the textures storage arrays.
// Bounds: rows and values of k clamp to the last valid one; values of c past
// the end read as 0 (both inputs masked). Only the stores are guarded, so
// any shape works.
// Numerics: f32 accumulation in order of the summed index, four at a time.
// Gradients accumulate (+=): the caller zeroes the output once per backward pass.
// import texels

alias real = f32;

struct DenseParams {
    rows: u32,    // batch
    k: u32,       // input features
    cols: u32,    // output features
    a_base: u32,  // first element of the first input in its texture copy
    b_base: u32,  // first element of the second input in its texture copy
    k_slice: u32, // dense_forward's split-K slice; unused here
    out_base: u32, // first element of the output in its bound window (0 but for conv2d's 1×1 GEMMs)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;

@group(0) @binding(1) var dy: texture_2d_array<f32>;
@group(0) @binding(2) var w: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

// dy[e .. e + 3] of the copy (two texel fetches, shifted by e % 4).
fn dy4(e: u32) -> vec4<real> {
    return shift4(tex4_at(dy, e >> 2u), tex4_at(dy, (e >> 2u) + 1u), e & 3u);
}

// w[e .. e + 3] of the copy (two texel fetches, shifted by e % 4).
fn w4(e: u32) -> vec4<real> {
    return shift4(tex4_at(w, e >> 2u), tex4_at(w, (e >> 2u) + 1u), e & 3u);
}

// Row `row` of the tile (columns n0 .. n0 + 7: lo, hi) added into dx. The
// loop has a constant trip count and no break, so it unrolls and lo, hi are
// indexed by constants; reading the tile from a private array indexed by
// loop variables (as before) made every value a gather from memory on
// lavapipe (docs/performance.md).
fn add_row(row: u32, n0: u32, lo: vec4<real>, hi: vec4<real>) {
    let N = params.k;
    if (row >= params.rows) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (n0 + j < N) {
            let idx = params.out_base + row * N + n0 + j;
            dx[idx] = dx[idx] + lo[j];
        }
        if (n0 + 4u + j < N) {
            let idx = params.out_base + row * N + n0 + 4u + j;
            dx[idx] = dx[idx] + hi[j];
        }
    }
}

@compute @workgroup_size(8, 8)
fn dense_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let M = params.rows;
    let N = params.k;
    let S = params.cols;
    let m0 = gid.y * 8u;
    let n0 = gid.x * 8u;
    if (m0 >= M || n0 >= N) {
        return;
    }
    let ar0 = params.a_base + min(m0 + 0u, M - 1u) * S;
    let ar1 = params.a_base + min(m0 + 1u, M - 1u) * S;
    let ar2 = params.a_base + min(m0 + 2u, M - 1u) * S;
    let ar3 = params.a_base + min(m0 + 3u, M - 1u) * S;
    let ar4 = params.a_base + min(m0 + 4u, M - 1u) * S;
    let ar5 = params.a_base + min(m0 + 5u, M - 1u) * S;
    let ar6 = params.a_base + min(m0 + 6u, M - 1u) * S;
    let ar7 = params.a_base + min(m0 + 7u, M - 1u) * S;
    let bc0 = params.b_base + min(n0 + 0u, N - 1u) * S;
    let bc1 = params.b_base + min(n0 + 1u, N - 1u) * S;
    let bc2 = params.b_base + min(n0 + 2u, N - 1u) * S;
    let bc3 = params.b_base + min(n0 + 3u, N - 1u) * S;
    let bc4 = params.b_base + min(n0 + 4u, N - 1u) * S;
    let bc5 = params.b_base + min(n0 + 5u, N - 1u) * S;
    let bc6 = params.b_base + min(n0 + 6u, N - 1u) * S;
    let bc7 = params.b_base + min(n0 + 7u, N - 1u) * S;
    var acc0_lo = vec4<real>(0.0);
    var acc0_hi = vec4<real>(0.0);
    var acc1_lo = vec4<real>(0.0);
    var acc1_hi = vec4<real>(0.0);
    var acc2_lo = vec4<real>(0.0);
    var acc2_hi = vec4<real>(0.0);
    var acc3_lo = vec4<real>(0.0);
    var acc3_hi = vec4<real>(0.0);
    var acc4_lo = vec4<real>(0.0);
    var acc4_hi = vec4<real>(0.0);
    var acc5_lo = vec4<real>(0.0);
    var acc5_hi = vec4<real>(0.0);
    var acc6_lo = vec4<real>(0.0);
    var acc6_hi = vec4<real>(0.0);
    var acc7_lo = vec4<real>(0.0);
    var acc7_hi = vec4<real>(0.0);
    let zero = vec4<real>(0.0);
    for (var s = 0u; s < S; s = s + 4u) {
        let live = (vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(S);
        let b0 = select(zero, w4(bc0 + s), live);
        let b1 = select(zero, w4(bc1 + s), live);
        let b2 = select(zero, w4(bc2 + s), live);
        let b3 = select(zero, w4(bc3 + s), live);
        let b4 = select(zero, w4(bc4 + s), live);
        let b5 = select(zero, w4(bc5 + s), live);
        let b6 = select(zero, w4(bc6 + s), live);
        let b7 = select(zero, w4(bc7 + s), live);
        let a0 = select(zero, dy4(ar0 + s), live);
        acc0_lo = acc0_lo + vec4<real>(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        acc0_hi = acc0_hi + vec4<real>(dot(a0, b4), dot(a0, b5), dot(a0, b6), dot(a0, b7));
        let a1 = select(zero, dy4(ar1 + s), live);
        acc1_lo = acc1_lo + vec4<real>(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        acc1_hi = acc1_hi + vec4<real>(dot(a1, b4), dot(a1, b5), dot(a1, b6), dot(a1, b7));
        let a2 = select(zero, dy4(ar2 + s), live);
        acc2_lo = acc2_lo + vec4<real>(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        acc2_hi = acc2_hi + vec4<real>(dot(a2, b4), dot(a2, b5), dot(a2, b6), dot(a2, b7));
        let a3 = select(zero, dy4(ar3 + s), live);
        acc3_lo = acc3_lo + vec4<real>(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
        acc3_hi = acc3_hi + vec4<real>(dot(a3, b4), dot(a3, b5), dot(a3, b6), dot(a3, b7));
        let a4 = select(zero, dy4(ar4 + s), live);
        acc4_lo = acc4_lo + vec4<real>(dot(a4, b0), dot(a4, b1), dot(a4, b2), dot(a4, b3));
        acc4_hi = acc4_hi + vec4<real>(dot(a4, b4), dot(a4, b5), dot(a4, b6), dot(a4, b7));
        let a5 = select(zero, dy4(ar5 + s), live);
        acc5_lo = acc5_lo + vec4<real>(dot(a5, b0), dot(a5, b1), dot(a5, b2), dot(a5, b3));
        acc5_hi = acc5_hi + vec4<real>(dot(a5, b4), dot(a5, b5), dot(a5, b6), dot(a5, b7));
        let a6 = select(zero, dy4(ar6 + s), live);
        acc6_lo = acc6_lo + vec4<real>(dot(a6, b0), dot(a6, b1), dot(a6, b2), dot(a6, b3));
        acc6_hi = acc6_hi + vec4<real>(dot(a6, b4), dot(a6, b5), dot(a6, b6), dot(a6, b7));
        let a7 = select(zero, dy4(ar7 + s), live);
        acc7_lo = acc7_lo + vec4<real>(dot(a7, b0), dot(a7, b1), dot(a7, b2), dot(a7, b3));
        acc7_hi = acc7_hi + vec4<real>(dot(a7, b4), dot(a7, b5), dot(a7, b6), dot(a7, b7));
    }
    add_row(m0, n0, acc0_lo, acc0_hi);
    add_row(m0 + 1u, n0, acc1_lo, acc1_hi);
    add_row(m0 + 2u, n0, acc2_lo, acc2_hi);
    add_row(m0 + 3u, n0, acc3_lo, acc3_hi);
    add_row(m0 + 4u, n0, acc4_lo, acc4_hi);
    add_row(m0 + 5u, n0, acc5_lo, acc5_hi);
    add_row(m0 + 6u, n0, acc6_lo, acc6_hi);
    add_row(m0 + 7u, n0, acc7_lo, acc7_hi);
}
