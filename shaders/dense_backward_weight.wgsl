// dense_backward_weight: dw += xᵀ · dy
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: dw[k, c] += Σ_r x[r, k] · dy[r, c]          x: [rows, k], dy: [rows, cols], dw: [k, cols]
//
// Thread mapping (register blocking, no workgroup memory — GUIDE §3: shared-memory
// tiling is ~20× slower on lavapipe, and 8×8 tiles run 2.4× faster than 4×4 there,
// see docs/kernels/dense.md): invocation (gid.x, gid.y) owns the 8×8 output
// tile dw[8·gid.y .. +8, 8·gid.x .. +8]; each step of r (the batch) loads 8
// contiguous values of x and 8 contiguous values of dy and does 64 multiply-adds.
// The 64 accumulators live in 16 vec4s: acc_i_lo holds columns 0–3 of tile row i,
// acc_i_hi columns 4–7. The tile is unrolled by hand (naga does not unroll loops).
// Bounds: loads clamp their row/column to the last valid one (no branch in the
// inner loop); only the stores are guarded, so any shape works.
// Numerics: f32 accumulation in order of the summed index. Gradients accumulate (+=):
// the caller zeroes the output once per backward pass.

alias real = f32;

struct DenseParams {
    rows: u32,  // batch
    k: u32,     // input features
    cols: u32,  // output features
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;

@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> dw: array<real>;

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
    let ar0 = min(m0 + 0u, M - 1u);
    let ar1 = min(m0 + 1u, M - 1u);
    let ar2 = min(m0 + 2u, M - 1u);
    let ar3 = min(m0 + 3u, M - 1u);
    let ar4 = min(m0 + 4u, M - 1u);
    let ar5 = min(m0 + 5u, M - 1u);
    let ar6 = min(m0 + 6u, M - 1u);
    let ar7 = min(m0 + 7u, M - 1u);
    let bc0 = min(n0 + 0u, N - 1u);
    let bc1 = min(n0 + 1u, N - 1u);
    let bc2 = min(n0 + 2u, N - 1u);
    let bc3 = min(n0 + 3u, N - 1u);
    let bc4 = min(n0 + 4u, N - 1u);
    let bc5 = min(n0 + 5u, N - 1u);
    let bc6 = min(n0 + 6u, N - 1u);
    let bc7 = min(n0 + 7u, N - 1u);
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
    for (var s = 0u; s < S; s = s + 1u) {
        let b_lo = vec4<real>(dy[s * N + bc0], dy[s * N + bc1], dy[s * N + bc2], dy[s * N + bc3]);
        let b_hi = vec4<real>(dy[s * N + bc4], dy[s * N + bc5], dy[s * N + bc6], dy[s * N + bc7]);
        let a0 = x[s * params.k + ar0];
        acc0_lo = acc0_lo + a0 * b_lo;
        acc0_hi = acc0_hi + a0 * b_hi;
        let a1 = x[s * params.k + ar1];
        acc1_lo = acc1_lo + a1 * b_lo;
        acc1_hi = acc1_hi + a1 * b_hi;
        let a2 = x[s * params.k + ar2];
        acc2_lo = acc2_lo + a2 * b_lo;
        acc2_hi = acc2_hi + a2 * b_hi;
        let a3 = x[s * params.k + ar3];
        acc3_lo = acc3_lo + a3 * b_lo;
        acc3_hi = acc3_hi + a3 * b_hi;
        let a4 = x[s * params.k + ar4];
        acc4_lo = acc4_lo + a4 * b_lo;
        acc4_hi = acc4_hi + a4 * b_hi;
        let a5 = x[s * params.k + ar5];
        acc5_lo = acc5_lo + a5 * b_lo;
        acc5_hi = acc5_hi + a5 * b_hi;
        let a6 = x[s * params.k + ar6];
        acc6_lo = acc6_lo + a6 * b_lo;
        acc6_hi = acc6_hi + a6 * b_hi;
        let a7 = x[s * params.k + ar7];
        acc7_lo = acc7_lo + a7 * b_lo;
        acc7_hi = acc7_hi + a7 * b_hi;
    }
    var tile = array<vec4<real>, 16>(
        acc0_lo, acc0_hi, acc1_lo, acc1_hi, acc2_lo, acc2_hi, acc3_lo, acc3_hi,
        acc4_lo, acc4_hi, acc5_lo, acc5_hi, acc6_lo, acc6_hi, acc7_lo, acc7_hi
    );
    for (var i = 0u; i < 8u; i = i + 1u) {
        if (m0 + i >= M) {
            break;
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            if (n0 + j < N) {
                let idx = (m0 + i) * N + n0 + j;
                let acc = tile[i * 2u + j / 4u][j % 4u];
                dw[idx] = dw[idx] + acc;
            }
        }
    }
}
