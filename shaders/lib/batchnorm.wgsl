// batchnorm: what the batch-norm kernels that read the layer's input share.
//
// Expects the importing shader to declare `params` with a `relu_input`
// field (BnParams).
// Thread mapping: none (functions only). Bounds: none.

// The layer's input: x itself, or relu(x) when params.relu_input = 1 (the
// relu of the conv or dense layer before, fused into this batch norm).
fn input_value(v: real) -> real {
    if (params.relu_input == 1u) {
        return max(v, real(0.0));
    }
    return v;
}
