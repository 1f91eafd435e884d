// dense_backward_weight: dw += xᵀ · dy
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: dw[k, c] += Σ_r x[r, k] · dy[r, c]          x: [rows, k], dy: [rows, cols], dw: [k, cols]
//
// Thread mapping (register blocking, no workgroup memory — GUIDE §3: shared-memory
// tiling is slower on lavapipe, and 8×8 tiles run faster than 4×4 there,
// see docs/kernels/dense.md): invocation (gid.x, gid.y) owns the 8×8 output
// tile dw[8·gid.y .. +8, 8·gid.x .. +8]; each step covers two values of r (the
// batch): per r it reads x[r, the tile's 8 values of k] and dy[r, its 8
// columns] (eight contiguous values each) and does 64 multiply-adds, so the
// accumulators are read and written once per two r.
// The 64 accumulators live in 16 vec4s: acc_i_lo holds columns 0–3 of tile row i,
// acc_i_hi columns 4–7. The tile is unrolled by hand (naga does not unroll loops).
// Inputs through textures: both inputs are read from texture copies
// (Gpu::read_window), four elements per texel fetch; a_base / b_base are
// their first elements in the copies. On lavapipe a storage load is a loop
// over the SIMD lanes and a texel fetch one gather: this cut the loads per
// 64 multiply-adds from 16 to 6 (docs/kernels/dense.md). In f64 the host
// binds the buffers and shaders::instantiate makes the textures storage arrays.
// Bounds: a second r past the batch reads as 0; values of k and columns past
// the end read the next row (finite) and are not stored. Only the stores are
// guarded, so any shape works.
// Numerics: f32 accumulation in order of the summed index. Gradients accumulate (+=):
// the caller zeroes the output once per backward pass.
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

@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var dy: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<real>;

// Eight consecutive values: lo = 0 .. 3, hi = 4 .. 7.
struct Eight {
    lo: vec4<real>,
    hi: vec4<real>,
}

// x[e .. e + 7] of the copy (three texel fetches, shifted by e % 4), or
// zeros where `live` is false.
fn x8(e: u32, live: bool) -> Eight {
    let k = e >> 2u;
    let t0 = tex4_at(x, k);
    let t1 = tex4_at(x, k + 1u);
    let t2 = tex4_at(x, k + 2u);
    let zero = vec4<real>(0.0);
    return Eight(select(zero, shift4(t0, t1, e & 3u), live), select(zero, shift4(t1, t2, e & 3u), live));
}

// dy[e .. e + 7] of the copy (three texel fetches, shifted by e % 4), or
// zeros where `live` is false.
fn dy8(e: u32, live: bool) -> Eight {
    let k = e >> 2u;
    let t0 = tex4_at(dy, k);
    let t1 = tex4_at(dy, k + 1u);
    let t2 = tex4_at(dy, k + 2u);
    let zero = vec4<real>(0.0);
    return Eight(select(zero, shift4(t0, t1, e & 3u), live), select(zero, shift4(t1, t2, e & 3u), live));
}

// Row `row` of the tile (columns n0 .. n0 + 7: lo, hi) added into dw. The
// loop has a constant trip count and no break, so it unrolls and lo, hi are
// indexed by constants; reading the tile from a private array indexed by
// loop variables (as before) made every value a gather from memory on
// lavapipe (docs/performance.md).
fn add_row(row: u32, n0: u32, lo: vec4<real>, hi: vec4<real>) {
    let N = params.cols;
    if (row >= params.k) {
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (n0 + j < N) {
            let idx = params.out_base + row * N + n0 + j;
            dw[idx] = dw[idx] + lo[j];
        }
        if (n0 + 4u + j < N) {
            let idx = params.out_base + row * N + n0 + 4u + j;
            dw[idx] = dw[idx] + hi[j];
        }
    }
}

@compute @workgroup_size(8, 8)
fn dense_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let M = params.k;
    let N = params.cols;
    let S = params.rows;
    let m0 = gid.y * 8u;
    let n0 = gid.x * 8u;
    if (m0 >= M || n0 >= N) {
        return;
    }
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
    for (var s = 0u; s < S; s = s + 2u) {
        let more = s + 1u < S;
        let a = x8(params.a_base + s * M + m0, true);
        let g = dy8(params.b_base + s * N + n0, true);
        let a2 = x8(params.a_base + (s + 1u) * M + m0, more);
        let g2 = dy8(params.b_base + (s + 1u) * N + n0, more);
        acc0_lo = acc0_lo + a.lo.x * g.lo + a2.lo.x * g2.lo;
        acc0_hi = acc0_hi + a.lo.x * g.hi + a2.lo.x * g2.hi;
        acc1_lo = acc1_lo + a.lo.y * g.lo + a2.lo.y * g2.lo;
        acc1_hi = acc1_hi + a.lo.y * g.hi + a2.lo.y * g2.hi;
        acc2_lo = acc2_lo + a.lo.z * g.lo + a2.lo.z * g2.lo;
        acc2_hi = acc2_hi + a.lo.z * g.hi + a2.lo.z * g2.hi;
        acc3_lo = acc3_lo + a.lo.w * g.lo + a2.lo.w * g2.lo;
        acc3_hi = acc3_hi + a.lo.w * g.hi + a2.lo.w * g2.hi;
        acc4_lo = acc4_lo + a.hi.x * g.lo + a2.hi.x * g2.lo;
        acc4_hi = acc4_hi + a.hi.x * g.hi + a2.hi.x * g2.hi;
        acc5_lo = acc5_lo + a.hi.y * g.lo + a2.hi.y * g2.lo;
        acc5_hi = acc5_hi + a.hi.y * g.hi + a2.hi.y * g2.hi;
        acc6_lo = acc6_lo + a.hi.z * g.lo + a2.hi.z * g2.lo;
        acc6_hi = acc6_hi + a.hi.z * g.hi + a2.hi.z * g2.hi;
        acc7_lo = acc7_lo + a.hi.w * g.lo + a2.hi.w * g2.lo;
        acc7_hi = acc7_hi + a.hi.w * g.hi + a2.hi.w * g2.hi;
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
