// dense_backward_input: dx += dy · wᵀ
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: dx[r, k] += Σ_c dy[r, c] · w[k, c]          dy: [rows, cols], w: [k, cols], dx: [rows, k]
//
// Thread mapping (register blocking): invocation (gid.x, gid.y) owns the 4×4
// tile dx[4·gid.y .. +4, 4·gid.x .. +4]; each step of c loads 4 values of dy
// (one per tile row) and 4 of w (one per tile column) and does 16 multiply-adds.
// Bounds: clamped loads, guarded stores. Gradients accumulate (+=): the caller
// zeroes dx once per backward pass.

alias real = f32;

struct DenseParams {
    rows: u32,
    k: u32,
    cols: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: DenseParams;
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read> w: array<real>;
@group(0) @binding(3) var<storage, read_write> dx: array<real>;

@compute @workgroup_size(8, 8)
fn dense_backward_input(@builtin(global_invocation_id) gid: vec3<u32>) {
    let R = params.rows;
    let K = params.k;
    let C = params.cols;
    let r0 = gid.y * 4u;
    let k0 = gid.x * 4u;
    if (r0 >= R || k0 >= K) {
        return;
    }
    let dr0 = min(r0, R - 1u) * C;
    let dr1 = min(r0 + 1u, R - 1u) * C;
    let dr2 = min(r0 + 2u, R - 1u) * C;
    let dr3 = min(r0 + 3u, R - 1u) * C;
    let wr = min(vec4<u32>(k0, k0 + 1u, k0 + 2u, k0 + 3u), vec4<u32>(K - 1u)) * C;

    var acc0 = vec4<real>(0.0);
    var acc1 = vec4<real>(0.0);
    var acc2 = vec4<real>(0.0);
    var acc3 = vec4<real>(0.0);
    for (var c = 0u; c < C; c = c + 1u) {
        let wk = vec4<real>(w[wr.x + c], w[wr.y + c], w[wr.z + c], w[wr.w + c]);
        acc0 = acc0 + dy[dr0 + c] * wk;
        acc1 = acc1 + dy[dr1 + c] * wk;
        acc2 = acc2 + dy[dr2 + c] * wk;
        acc3 = acc3 + dy[dr3 + c] * wk;
    }
    var rows = array<vec4<real>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let r = r0 + i;
        if (r < R) {
            for (var j = 0u; j < 4u; j = j + 1u) {
                let kk = k0 + j;
                if (kk < K) {
                    dx[r * K + kk] = dx[r * K + kk] + rows[i][j];
                }
            }
        }
    }
}
