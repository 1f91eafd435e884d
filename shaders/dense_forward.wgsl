// dense_forward: y = x · w + b
//
//   y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]        x: [rows, k], w: [k, cols], b: [cols], y: [rows, cols]
//
// Thread mapping (register blocking, no workgroup memory — GUIDE §3: shared-memory
// tiling is slower on lavapipe, and 8×8 tiles run faster than 4×4 there,
// see docs/kernels/dense.md): invocation (gid.x, gid.y) owns the 8×8 output
// tile y[8·gid.y .. +8, 8·gid.x .. +8] over slice gid.z of k (split-K: k in
// [gid.z·k_slice, (gid.z + 1)·k_slice), k_slice a multiple of 4; the host
// splits k only where the tiles alone would leave the adapter idle, see
// docs/kernels/dense.md, and sums the slices with reduce_partials); each
// step covers four values of k: it
// reads x[row, k .. k+3] for the tile's 8 rows (one vec4 each) and
// w[k .. k+3, the tile's 8 columns] (four rows of eight) and does 256
// multiply-adds, so the accumulators are read and written once per four k.
// The 64 accumulators live in 16 vec4s: acc_i_lo holds columns 0–3 of tile row i,
// acc_i_hi columns 4–7. The tile is unrolled by hand (naga does not unroll loops).
// Inputs through textures: both inputs are read from texture copies
// (Gpu::read_window), four elements per texel fetch; a_base / b_base are
// their first elements in the copies. On lavapipe a storage load is a loop
// over the SIMD lanes and a texel fetch one gather: this cut the loads per
// 64 multiply-adds from 16 to 7 (16 x values in 8 vec4 + 32 w values per 4 k: 28 fetches) (docs/kernels/dense.md). In f64 the host
// binds the buffers and shaders::instantiate makes the textures storage arrays.
// Bounds: x rows clamp to the last valid one; values of k past the end read
// as 0 (x and w both masked, so stale texels past a copy cannot leak NaN);
// columns past the end read the next row (finite) and are not stored. Only
// the stores are guarded, so any shape works. Slice z writes its tile at
// y[z·rows·cols + …] and only slice 0 adds the bias (one slice: y itself).
// Numerics: f32 accumulation in order of the summed index, four at a time,
// within a slice; the slices are added in order by reduce_partials.
// import texels

alias real = f32;

struct DenseParams {
    rows: u32,    // batch
    k: u32,       // input features
    cols: u32,    // output features
    a_base: u32,  // first element of the first input in its texture copy
    b_base: u32,  // first element of the second input in its texture copy
    k_slice: u32, // k values per slice of a split-K dispatch (multiple of 4)
    out_base: u32, // first element of the output in its bound window (0 but for conv2d's 1×1 GEMMs)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;

@group(0) @binding(1) var x: texture_2d_array<f32>;
@group(0) @binding(2) var w: texture_2d_array<f32>;
@group(0) @binding(3) var<storage, read> b: array<real>;
@group(0) @binding(4) var<storage, read_write> y: array<real>;

// x[e .. e + 3] of the copy (two texel fetches, shifted by e % 4).
fn x4(e: u32) -> vec4<real> {
    return shift4(tex4_at(x, e >> 2u), tex4_at(x, (e >> 2u) + 1u), e & 3u);
}

// Eight consecutive values: lo = 0 .. 3, hi = 4 .. 7.
struct Eight {
    lo: vec4<real>,
    hi: vec4<real>,
}

// w[e .. e + 7] of the copy (three texel fetches, shifted by e % 4), or
// zeros where `live` is false.
fn w8(e: u32, live: bool) -> Eight {
    let k = e >> 2u;
    let t0 = tex4_at(w, k);
    let t1 = tex4_at(w, k + 1u);
    let t2 = tex4_at(w, k + 2u);
    let zero = vec4<real>(0.0);
    return Eight(select(zero, shift4(t0, t1, e & 3u), live), select(zero, shift4(t1, t2, e & 3u), live));
}

@compute @workgroup_size(8, 8)
fn dense_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let M = params.rows;
    let N = params.cols;
    let S = params.k;
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
    let s_begin = gid.z * params.k_slice;
    let s_end = min(S, s_begin + params.k_slice);
    for (var s = s_begin; s < s_end; s = s + 4u) {
        let live = (vec4<u32>(s) + vec4<u32>(0u, 1u, 2u, 3u)) < vec4<u32>(S);
        let wb = params.b_base + s * N + n0;
        let w0 = w8(wb, true);
        let w1 = w8(wb + N, live.y);
        let w2 = w8(wb + 2u * N, live.z);
        let w3 = w8(wb + 3u * N, live.w);
        let a0 = select(zero, x4(ar0 + s), live);
        acc0_lo = acc0_lo + a0.x * w0.lo + a0.y * w1.lo + a0.z * w2.lo + a0.w * w3.lo;
        acc0_hi = acc0_hi + a0.x * w0.hi + a0.y * w1.hi + a0.z * w2.hi + a0.w * w3.hi;
        let a1 = select(zero, x4(ar1 + s), live);
        acc1_lo = acc1_lo + a1.x * w0.lo + a1.y * w1.lo + a1.z * w2.lo + a1.w * w3.lo;
        acc1_hi = acc1_hi + a1.x * w0.hi + a1.y * w1.hi + a1.z * w2.hi + a1.w * w3.hi;
        let a2 = select(zero, x4(ar2 + s), live);
        acc2_lo = acc2_lo + a2.x * w0.lo + a2.y * w1.lo + a2.z * w2.lo + a2.w * w3.lo;
        acc2_hi = acc2_hi + a2.x * w0.hi + a2.y * w1.hi + a2.z * w2.hi + a2.w * w3.hi;
        let a3 = select(zero, x4(ar3 + s), live);
        acc3_lo = acc3_lo + a3.x * w0.lo + a3.y * w1.lo + a3.z * w2.lo + a3.w * w3.lo;
        acc3_hi = acc3_hi + a3.x * w0.hi + a3.y * w1.hi + a3.z * w2.hi + a3.w * w3.hi;
        let a4 = select(zero, x4(ar4 + s), live);
        acc4_lo = acc4_lo + a4.x * w0.lo + a4.y * w1.lo + a4.z * w2.lo + a4.w * w3.lo;
        acc4_hi = acc4_hi + a4.x * w0.hi + a4.y * w1.hi + a4.z * w2.hi + a4.w * w3.hi;
        let a5 = select(zero, x4(ar5 + s), live);
        acc5_lo = acc5_lo + a5.x * w0.lo + a5.y * w1.lo + a5.z * w2.lo + a5.w * w3.lo;
        acc5_hi = acc5_hi + a5.x * w0.hi + a5.y * w1.hi + a5.z * w2.hi + a5.w * w3.hi;
        let a6 = select(zero, x4(ar6 + s), live);
        acc6_lo = acc6_lo + a6.x * w0.lo + a6.y * w1.lo + a6.z * w2.lo + a6.w * w3.lo;
        acc6_hi = acc6_hi + a6.x * w0.hi + a6.y * w1.hi + a6.z * w2.hi + a6.w * w3.hi;
        let a7 = select(zero, x4(ar7 + s), live);
        acc7_lo = acc7_lo + a7.x * w0.lo + a7.y * w1.lo + a7.z * w2.lo + a7.w * w3.lo;
        acc7_hi = acc7_hi + a7.x * w0.hi + a7.y * w1.hi + a7.z * w2.hi + a7.w * w3.hi;
    }
    var tile = array<vec4<real>, 16>(
        acc0_lo, acc0_hi, acc1_lo, acc1_hi, acc2_lo, acc2_hi, acc3_lo, acc3_hi,
        acc4_lo, acc4_hi, acc5_lo, acc5_hi, acc6_lo, acc6_hi, acc7_lo, acc7_hi
    );
    let slice = gid.z * M * N;
    let bias = select(real(0.0), real(1.0), gid.z == 0u);
    for (var i = 0u; i < 8u; i = i + 1u) {
        if (m0 + i >= M) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (n0 + j < N) {
                let idx = params.out_base + slice + (m0 + i) * N + n0 + j;
                let acc = tile[i * 2u + j / 4u][j % 4u];
                y[idx] = acc + bias * b[n0 + j];
            }
        }
    }
}
