//! The one list of ops and their kernels. Everything that enumerates them
//! reads it: `postergrad gradcheck`'s op list and `--op` values, the CLI
//! help, `tools/gradcheck_docs.py` (through `gradcheck --list`), and the
//! tests that check every `shaders/*.wgsl` has an entry here and that each
//! kernel's uniform struct matches its host mirror field by field.
//!
//! An op's name finds its file `src/ops/<op>.rs`, its page
//! `docs/kernels/<op>.md` and its gradient checks (`gradcheck --op <op>`);
//! a kernel's name finds its shader `shaders/<kernel>.wgsl`, its entry
//! point, its host function, its bench id, its profile row and a heading on
//! its op's page.

use super::adam::AdamParams;
use super::avgpool::AvgPoolParams;
use super::batchnorm::BnParams;
use super::bce::BceParams;
use super::bnpool::BnPoolParams;
use super::conv2d::{ConvForwardParams, ConvParams, PackParams};
use super::dense::DenseParams;
use super::dropout::DropoutParams;
use super::exp_log::ExpLogParams;
use super::maxpool::PoolParams;
use super::nonfinite::NonfiniteParams;
use super::peak::PeakParams;
use super::reduce::ReduceParams;
use super::{AddScaledParams, ElementwiseParams};
use crate::gpu::Uniform;
use crate::tensor::FillParams;

/// One op: a layer's forward and backward (or a helper every op uses).
pub struct Op {
    pub name: &'static str,
    /// What it computes, in one line.
    pub summary: &'static str,
    /// Whether `gradcheck` checks it (helpers without a gradient do not).
    pub gradcheck: bool,
    pub kernels: &'static [KernelEntry],
}

/// One kernel: `shaders/<name>.wgsl`, entry point `<name>`, and its
/// uniform struct's host mirror.
pub struct KernelEntry {
    pub name: &'static str,
    /// The host mirror's name, for messages.
    pub params: &'static str,
    /// Its fields as (name, byte offset), nested structs flattened.
    pub layout: fn() -> Vec<(&'static str, usize)>,
    /// Its size in bytes.
    pub size: usize,
}

macro_rules! kernel {
    ($name:literal, $params:ty) => {
        KernelEntry {
            name: $name,
            params: stringify!($params),
            layout: <$params as Uniform>::layout,
            size: std::mem::size_of::<$params>(),
        }
    };
}

/// Every op, in the order `gradcheck` runs them.
pub const OPS: &[Op] = &[
    Op {
        name: "dense",
        summary: "y = x·W + b (split-K where k is long)",
        gradcheck: true,
        kernels: &[
            kernel!("dense_forward", DenseParams),
            kernel!("dense_backward_input", DenseParams),
            kernel!("dense_backward_weight", DenseParams),
            kernel!("dense_backward_bias", DenseParams),
        ],
    },
    Op {
        name: "relu",
        summary: "y = max(x, 0)",
        gradcheck: true,
        kernels: &[
            kernel!("relu_forward", ElementwiseParams),
            kernel!("relu_backward", ElementwiseParams),
        ],
    },
    Op {
        name: "sigmoid",
        summary: "y = 1 / (1 + e^-x)",
        gradcheck: true,
        kernels: &[
            kernel!("sigmoid_forward", ElementwiseParams),
            kernel!("sigmoid_backward", ElementwiseParams),
        ],
    },
    Op {
        name: "bce",
        summary: "binary cross-entropy of clipped probabilities, mean over labels and batch",
        gradcheck: true,
        kernels: &[
            kernel!("bce_forward", BceParams),
            kernel!("bce_backward", BceParams),
        ],
    },
    Op {
        name: "conv2d",
        summary: "2-D convolution, NCHW, any kernel size, stride and padding",
        gradcheck: true,
        kernels: &[
            kernel!("conv2d_forward", ConvForwardParams),
            kernel!("conv2d_forward_3x3", ConvForwardParams),
            kernel!("conv2d_pack_weights", PackParams),
            kernel!("conv2d_backward_input", ConvParams),
            kernel!("conv2d_dilate", ConvParams),
            kernel!("conv2d_backward_weight", ConvParams),
            kernel!("conv2d_backward_weight_3x3", ConvParams),
            kernel!("conv2d_backward_weight_3x3_subgroup", ConvParams),
            kernel!("conv2d_backward_bias", ConvParams),
        ],
    },
    Op {
        name: "batchnorm",
        summary: "batch normalisation per channel or feature (batch statistics, moving averages)",
        gradcheck: true,
        kernels: &[
            kernel!("batchnorm_partials", BnParams),
            kernel!("batchnorm_stats", BnParams),
            kernel!("batchnorm_forward", BnParams),
            kernel!("batchnorm_backward_partials", BnParams),
            kernel!("batchnorm_backward_params", BnParams),
            kernel!("batchnorm_backward_input", BnParams),
        ],
    },
    Op {
        name: "maxpool",
        summary: "max over windows of any size, stride and padding (padding never wins)",
        gradcheck: true,
        kernels: &[
            kernel!("maxpool_forward", PoolParams),
            kernel!("maxpool_backward", PoolParams),
            kernel!("maxpool_backward_windows", PoolParams),
        ],
    },
    Op {
        name: "avgpool",
        summary: "global average pooling, [N, C, H, W] → [N, C] (ResNet's head)",
        gradcheck: true,
        kernels: &[
            kernel!("avgpool_forward", AvgPoolParams),
            kernel!("avgpool_backward", AvgPoolParams),
        ],
    },
    Op {
        name: "add_relu",
        summary: "y = max(a + b, 0): a residual block's shortcut add and relu in one pass",
        gradcheck: true,
        kernels: &[
            kernel!("add_relu_forward", ElementwiseParams),
            kernel!("add_relu_backward", ElementwiseParams),
        ],
    },
    Op {
        name: "dropout",
        summary: "inverted dropout with a seeded mask",
        gradcheck: true,
        kernels: &[
            kernel!("dropout_forward", DropoutParams),
            kernel!("dropout_backward", DropoutParams),
        ],
    },
    Op {
        name: "bnpool",
        summary: "batch-norm, max-pool and dropout fused (a conv block's tail)",
        gradcheck: true,
        kernels: &[
            kernel!("bnpool_forward", BnPoolParams),
            kernel!("bnpool_backward_partials", BnPoolParams),
            kernel!("bnpool_backward_input", BnPoolParams),
        ],
    },
    Op {
        name: "adam",
        summary: "Adam update, bias-corrected, skipped when a gradient is non-finite",
        gradcheck: true,
        kernels: &[kernel!("adam_step", AdamParams)],
    },
    Op {
        name: "nonfinite",
        summary: "counts NaN and ±Inf values (the training step's guard)",
        gradcheck: false,
        kernels: &[kernel!("nonfinite_count", NonfiniteParams)],
    },
    Op {
        name: "tensor",
        summary: "fill, y += a·x, and the second half of every split reduction",
        gradcheck: false,
        kernels: &[
            kernel!("fill", FillParams),
            kernel!("add_scaled", AddScaledParams),
            kernel!("reduce_partials", ReduceParams),
        ],
    },
    Op {
        name: "exp_log",
        summary: "exp and log of the f64 maths library, for its accuracy tests",
        gradcheck: false,
        kernels: &[kernel!("exp_log", ExpLogParams)],
    },
    Op {
        name: "peak",
        summary: "the adapter's multiply-add rate (profile's yardstick)",
        gradcheck: false,
        kernels: &[kernel!("peak_fma", PeakParams)],
    },
];

/// The names of the ops `gradcheck` checks, in order.
pub fn gradcheck_ops() -> Vec<&'static str> {
    OPS.iter().filter(|o| o.gradcheck).map(|o| o.name).collect()
}

/// Every kernel with its op.
pub fn kernels() -> impl Iterator<Item = (&'static Op, &'static KernelEntry)> {
    OPS.iter()
        .flat_map(|op| op.kernels.iter().map(move |k| (op, k)))
}

/// The op a kernel belongs to.
pub fn op_of(kernel: &str) -> Option<&'static Op> {
    kernels().find(|(_, k)| k.name == kernel).map(|(op, _)| op)
}
