// dense_forward: y = x · w + b
//
//   y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]        x: [rows, k], w: [k, cols], b: [cols], y: [rows, cols]
//
// Thread mapping (register blocking, no workgroup memory — GUIDE §3: 20× faster
// than shared-memory tiling on lavapipe): invocation (gid.x, gid.y) owns the 4×4
// output tile y[4·gid.y .. +4, 4·gid.x .. +4], kept in four vec4 accumulators.
// Each step of k loads 4 values of x (one per tile row) and 4 of w (one row of
// the tile's columns) and does 16 multiply-adds.
// Bounds: loads clamp their row/column to the last valid one (no branch in the
// inner loop); only the stores are guarded.
// Numerics: plain f32 accumulation in k order.

alias real = f32;

struct DenseParams {
    rows: u32,  // batch
    k: u32,     // input features
    cols: u32,  // output features
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> w: array<real>;
@group(0) @binding(3) var<storage, read> b: array<real>;
@group(0) @binding(4) var<storage, read_write> y: array<real>;

@compute @workgroup_size(8, 8)
fn dense_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let R = params.rows;
    let K = params.k;
    let C = params.cols;
    let r0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (r0 >= R || c0 >= C) {
        return;
    }
    // Clamped row offsets into x and column indices into w.
    let xr0 = min(r0, R - 1u) * K;
    let xr1 = min(r0 + 1u, R - 1u) * K;
    let xr2 = min(r0 + 2u, R - 1u) * K;
    let xr3 = min(r0 + 3u, R - 1u) * K;
    let wc = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(C - 1u));

    var acc0 = vec4<real>(0.0);
    var acc1 = vec4<real>(0.0);
    var acc2 = vec4<real>(0.0);
    var acc3 = vec4<real>(0.0);
    for (var kk = 0u; kk < K; kk = kk + 1u) {
        let wo = kk * C;
        let wk = vec4<real>(w[wo + wc.x], w[wo + wc.y], w[wo + wc.z], w[wo + wc.w]);
        acc0 = acc0 + x[xr0 + kk] * wk;
        acc1 = acc1 + x[xr1 + kk] * wk;
        acc2 = acc2 + x[xr2 + kk] * wk;
        acc3 = acc3 + x[xr3 + kk] * wk;
    }
    let bias = vec4<real>(b[wc.x], b[wc.y], b[wc.z], b[wc.w]);
    var rows = array<vec4<real>, 4>(acc0 + bias, acc1 + bias, acc2 + bias, acc3 + bias);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = r0 + i;
        if (r < R) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let c = c0 + j;
                if (c < C) {
                    y[r * C + c] = rows[i][j];
                }
            }
        }
    }
}
