// dense_backward_weight: dw += xᵀ · dy
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: dw[k, c] += Σ_r x[r, k] · dy[r, c]          x: [rows, k], dy: [rows, cols], dw: [k, cols]
//
// Thread mapping (register blocking): invocation (gid.x, gid.y) owns the 4×4
// tile dw[4·gid.y .. +4, 4·gid.x .. +4]; each step of r (the batch) loads 4
// contiguous values of x and 4 contiguous values of dy and does 16
// multiply-adds.
// Bounds: clamped loads, guarded stores. Gradients accumulate (+=).

alias real = f32;

struct DenseParams {
    rows: u32,
    k: u32,
    cols: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;
@group(0) @binding(1) var<storage, read> x: array<real>;
@group(0) @binding(2) var<storage, read> dy: array<real>;
@group(0) @binding(3) var<storage, read_write> dw: array<real>;

@compute @workgroup_size(8, 8)
fn dense_backward_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let R = params.rows;
    let K = params.k;
    let C = params.cols;
    let k0 = gid.y * 4u;
    let c0 = gid.x * 4u;
    if (k0 >= K || c0 >= C) {
        return;
    }
    let xk = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(K - 1u));
    let dc = min(vec4<u32>(c0, c0 + 1u, c0 + 2u, c0 + 3u), vec4<u32>(C - 1u));

    var acc0 = vec4<real>(0.0);
    var acc1 = vec4<real>(0.0);
    var acc2 = vec4<real>(0.0);
    var acc3 = vec4<real>(0.0);
    for (var r = 0u; r < R; r = r + 1u) {
        let xo = r * K;
        let yo = r * C;
        let g = vec4<real>(dy[yo + dc.x], dy[yo + dc.y], dy[yo + dc.z], dy[yo + dc.w]);
        acc0 = acc0 + x[xo + xk.x] * g;
        acc1 = acc1 + x[xo + xk.y] * g;
        acc2 = acc2 + x[xo + xk.z] * g;
        acc3 = acc3 + x[xo + xk.w] * g;
    }
    var rows = array<vec4<real>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let kk = k0 + i;
        if (kk < K) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let c = c0 + j;
                if (c < C) {
                    dw[kk * C + c] = dw[kk * C + c] + rows[i][j];
                }
            }
        }
    }
}
