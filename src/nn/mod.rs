//! Layers and models built from the ops.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::{
    batch_norm, binary_cross_entropy, bnpool, conv2d, dense, dropout, flatten, maxpool, relu,
    sigmoid, BatchNormConfig, BatchNormState, BnInput, BnPoolConfig, Conv2dConfig, DropoutConfig,
    MaxPoolConfig,
};
use crate::rng::Rng;
use crate::tape::{Param, Tape, Var};
use crate::tensor::Tensor;
use std::fmt;

pub mod check;
mod mlp;
mod model;
pub mod resnet;
pub mod weights;

pub use mlp::*;
pub use model::*;
pub use resnet::{BlockKind, Freeze, ResNet, ResNetSpec};

/// The models `postergrad train --model` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// The Keras tutorial's CNN (GUIDE §1): four conv blocks with batch-norm
    /// and dropout, two dense blocks of 128, a sigmoid head.
    Poster,
    /// The lighter 5×5 variant: conv 16/32/64/64, pooling and dropout 0.25,
    /// dense 128 and 64 with dropout 0.5, no batch-norm.
    Poster5,
    /// A feed-forward net on the flattened pixels: dense 64, 64, 32 (relu).
    Mlp,
    /// torchvision's ResNet-18, -34 and -50 (v1.5) with a `labels`-wide
    /// sigmoid head (`nn::resnet`).
    ResNet18,
    ResNet34,
    ResNet50,
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<ModelKind> {
        ModelKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::Config {
                what: "--model".into(),
                message: format!(
                    "unknown model `{s}`; choose {}",
                    ModelKind::ALL.map(|k| k.name()).join(", ")
                ),
            })
    }
}

/// One layer of a sequential model, with Keras's semantics (the activation
/// of Conv2D and Dense is applied inside the layer, before what follows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerSpec {
    /// Valid 3×3 or 5×5 convolution, stride 1, glorot-uniform kernel, zero bias.
    Conv2d {
        filters: usize,
        kernel: usize,
        activation: Activation,
    },
    /// Per channel (after a conv) or per feature (after a dense layer).
    BatchNorm,
    /// 2×2, stride 2, valid.
    MaxPool,
    /// Inverted dropout; the identity at inference.
    Dropout { rate: f32 },
    /// [N, C, H, W] → [N, C·H·W] (NCHW order), a view.
    Flatten,
    Dense {
        units: usize,
        activation: Activation,
    },
    /// A row of a ResNet's summary (the network itself is `nn::resnet`).
    Residual(ResidualRow),
}

/// The rows a ResNet's summary shows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ResidualRow {
    /// conv1 7×7/2 → bn1 → relu → maxpool 3×3/2 (padding 1).
    Stem,
    /// `blocks` residual blocks of `width` (the first strides by 2 after layer1).
    Stage {
        blocks: usize,
        width: usize,
        block: BlockKind,
    },
    /// Global average pooling.
    AvgPool,
}

impl LayerSpec {
    /// Keras's default layer name stem.
    pub fn keras_name(&self) -> &'static str {
        match self {
            LayerSpec::Conv2d { .. } => "conv2d",
            LayerSpec::BatchNorm => "batch_normalization",
            LayerSpec::MaxPool => "max_pooling2d",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Residual(_) => "residual",
        }
    }

    /// The type column of the summary ("Conv2D 3×3, relu").
    pub fn describe(&self) -> String {
        let act = |a: &Activation| match a {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
        };
        match self {
            LayerSpec::Conv2d {
                kernel, activation, ..
            } => format!("Conv2D {kernel}×{kernel}, {}", act(activation)),
            LayerSpec::BatchNorm => "BatchNormalization".into(),
            LayerSpec::MaxPool => "MaxPooling2D 2×2".into(),
            LayerSpec::Dropout { rate } => format!("Dropout {rate}"),
            LayerSpec::Flatten => "Flatten".into(),
            LayerSpec::Dense { activation, .. } => format!("Dense, {}", act(activation)),
            LayerSpec::Residual(ResidualRow::Stem) => "7×7 conv, BN, relu, pool".into(),
            LayerSpec::Residual(ResidualRow::Stage { blocks, block, .. }) => {
                format!("{blocks} × {block:?}")
            }
            LayerSpec::Residual(ResidualRow::AvgPool) => "GlobalAveragePooling".into(),
        }
    }
}

/// A Keras-like summary table of `kind` at `size`.
pub fn summary(kind: ModelKind, size: usize, labels: usize) -> Result<String> {
    let layers = kind.describe(size, labels)?;
    let group = |n: usize| {
        let s = n.to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    };
    let rule = "─".repeat(88);
    let mut t = format!(
        "Model: \"{kind}\" (input [N, 3, {size}, {size}], {labels} outputs)\n{rule}\n{:<24}{:<26}{:<24}{:>14}\n{}\n",
        "Layer",
        "Type",
        "Output shape (NCHW)",
        "Param #",
        "═".repeat(88)
    );
    for l in &layers {
        let shape = l
            .output
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        t += &format!(
            "{:<24}{:<26}{:<24}{:>14}\n",
            l.name,
            l.spec.describe(),
            format!("[N, {shape}]"),
            group(l.trainable + l.non_trainable)
        );
    }
    let trainable: usize = layers.iter().map(|l| l.trainable).sum();
    let frozen: usize = layers.iter().map(|l| l.non_trainable).sum();
    let mb = |n: usize| n as f64 * 4.0 / (1 << 20) as f64;
    t += &format!(
        "{rule}\nTotal params: {} ({:.2} MB)\nTrainable params: {} ({:.2} MB)\nNon-trainable params: {} ({:.2} MB)  (batch-norm moving mean and variance)\n",
        group(trainable + frozen),
        mb(trainable + frozen),
        group(trainable),
        mb(trainable),
        group(frozen),
        mb(frozen)
    );
    Ok(t)
}
