//! Every WGSL shader, compiled into the binary. `shaders/<name>.wgsl` holds
//! the entry point `<name>`; a test checks this table lists every file.

use crate::error::{Error, Result};

/// (name, source) of every shader in `shaders/`.
pub const SHADERS: &[(&str, &str)] = &[
    ("adam_step", include_str!("../shaders/adam_step.wgsl")),
    ("add_scaled", include_str!("../shaders/add_scaled.wgsl")),
    (
        "batchnorm_backward_input",
        include_str!("../shaders/batchnorm_backward_input.wgsl"),
    ),
    (
        "batchnorm_backward_params",
        include_str!("../shaders/batchnorm_backward_params.wgsl"),
    ),
    (
        "batchnorm_backward_partials",
        include_str!("../shaders/batchnorm_backward_partials.wgsl"),
    ),
    (
        "batchnorm_forward",
        include_str!("../shaders/batchnorm_forward.wgsl"),
    ),
    (
        "batchnorm_partials",
        include_str!("../shaders/batchnorm_partials.wgsl"),
    ),
    (
        "batchnorm_stats",
        include_str!("../shaders/batchnorm_stats.wgsl"),
    ),
    ("bce_backward", include_str!("../shaders/bce_backward.wgsl")),
    ("bce_forward", include_str!("../shaders/bce_forward.wgsl")),
    (
        "conv2d_backward_bias",
        include_str!("../shaders/conv2d_backward_bias.wgsl"),
    ),
    (
        "conv2d_backward_input",
        include_str!("../shaders/conv2d_backward_input.wgsl"),
    ),
    (
        "conv2d_backward_weight",
        include_str!("../shaders/conv2d_backward_weight.wgsl"),
    ),
    (
        "conv2d_forward",
        include_str!("../shaders/conv2d_forward.wgsl"),
    ),
    (
        "conv2d_pack_weights",
        include_str!("../shaders/conv2d_pack_weights.wgsl"),
    ),
    (
        "dense_backward_bias",
        include_str!("../shaders/dense_backward_bias.wgsl"),
    ),
    (
        "dense_backward_input",
        include_str!("../shaders/dense_backward_input.wgsl"),
    ),
    (
        "dense_backward_weight",
        include_str!("../shaders/dense_backward_weight.wgsl"),
    ),
    (
        "dense_forward",
        include_str!("../shaders/dense_forward.wgsl"),
    ),
    (
        "dropout_backward",
        include_str!("../shaders/dropout_backward.wgsl"),
    ),
    (
        "dropout_forward",
        include_str!("../shaders/dropout_forward.wgsl"),
    ),
    ("fill", include_str!("../shaders/fill.wgsl")),
    (
        "maxpool_backward",
        include_str!("../shaders/maxpool_backward.wgsl"),
    ),
    (
        "maxpool_forward",
        include_str!("../shaders/maxpool_forward.wgsl"),
    ),
    (
        "nonfinite_count",
        include_str!("../shaders/nonfinite_count.wgsl"),
    ),
    ("peak_fma", include_str!("../shaders/peak_fma.wgsl")),
    (
        "reduce_partials",
        include_str!("../shaders/reduce_partials.wgsl"),
    ),
    (
        "relu_backward",
        include_str!("../shaders/relu_backward.wgsl"),
    ),
    ("relu_forward", include_str!("../shaders/relu_forward.wgsl")),
    (
        "sigmoid_backward",
        include_str!("../shaders/sigmoid_backward.wgsl"),
    ),
    (
        "sigmoid_forward",
        include_str!("../shaders/sigmoid_forward.wgsl"),
    ),
];

/// The embedded source of a shader.
pub fn source(name: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::UnknownShader(name.to_string()))
}
