// dense_backward_bias: db += Σ_r dy
//
//   forward:  y[r, c] = b[c] + Σ_k x[r, k] · w[k, c]
//   backward: db[c] += Σ_r dy[r, c]                       dy: [rows, cols], db: [cols]
//
// Thread mapping: one invocation per output feature c, looping over the batch
// (coalesced: neighbouring invocations read neighbouring columns).
// Bounds: invocations with c ≥ cols return. Gradients accumulate (+=).

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
@group(0) @binding(1) var<storage, read> dy: array<real>;
@group(0) @binding(2) var<storage, read_write> db: array<real>;

@compute @workgroup_size(64)
fn dense_backward_bias(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= params.cols) {
        return;
    }
    var acc = real(0.0);
    for (var r = 0u; r < params.rows; r = r + 1u) {
        acc = acc + dy[r * params.cols + c];
    }
    db[c] = db[c] + acc;
}
