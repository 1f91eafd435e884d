//! torchvision's ResNets (v1.5: the bottleneck strides on its 3×3 conv),
//! built from the engine's ops. Names follow torchvision's state_dict
//! (`conv1.weight`, `layer1.0.bn2.running_var`, `layer2.0.downsample.0.weight`),
//! so its weights load by name (`nn::weights`). The one departure: the head
//! is `fc.kernel` [features, labels] (the dense op's layout) where
//! torchvision's `fc.weight` is [labels, features]; the import transposes it.
//!
//! ```text
//! x ─ normalise (ImageNet mean/std) ─ conv1 7×7/2 ─ bn1 ─ relu ─ maxpool 3×3/2 pad 1
//!   ─ layer1 … layer4 (blocks below) ─ avgpool (global) ─ fc ─ sigmoid
//!
//! Bottleneck(x):  out = relu(bn1(conv1 1×1 (x)))
//!                 out = relu(bn2(conv2 3×3, stride (out)))
//!                 out = bn3(conv3 1×1 (out))               (4 × width channels)
//!                 identity = downsample(x) or x             (1×1 conv, stride, + bn)
//!                 return relu(out + identity)               (add_relu)
//! BasicBlock(x):  out = relu(bn1(conv1 3×3, stride (x))); out = bn2(conv2 3×3 (out))
//!                 return relu(out + downsample(x) or x)
//! ```

use super::*;
use crate::ops::conv2d::ConvGeometry;
use crate::ops::{add_relu, avgpool, BnStatistics, Padding};

/// torchvision's two residual blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3×3 convs (resnet18, resnet34); output = width channels.
    Basic,
    /// 1×1 → 3×3 → 1×1 (resnet50); output = 4 × width channels.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of width (torchvision's `expansion`).
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// A ResNet's shape: block kind, blocks per stage, stem and stage widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResNetSpec {
    pub block: BlockKind,
    pub blocks: [usize; 4],
    /// The stem conv's output channels (64 in torchvision).
    pub stem: usize,
    /// Each stage's width (64, 128, 256, 512 in torchvision).
    pub widths: [usize; 4],
}

impl ResNetSpec {
    pub const RESNET18: ResNetSpec = ResNetSpec {
        block: BlockKind::Basic,
        blocks: [2, 2, 2, 2],
        stem: 64,
        widths: [64, 128, 256, 512],
    };
    pub const RESNET34: ResNetSpec = ResNetSpec {
        block: BlockKind::Basic,
        blocks: [3, 4, 6, 3],
        stem: 64,
        widths: [64, 128, 256, 512],
    };
    pub const RESNET50: ResNetSpec = ResNetSpec {
        block: BlockKind::Bottleneck,
        blocks: [3, 4, 6, 3],
        stem: 64,
        widths: [64, 128, 256, 512],
    };

    /// torchvision's name for it ("resnet50"), or the shape of another one.
    pub fn name(&self) -> String {
        match *self {
            ResNetSpec::RESNET18 => "resnet18".into(),
            ResNetSpec::RESNET34 => "resnet34".into(),
            ResNetSpec::RESNET50 => "resnet50".into(),
            s => format!(
                "a ResNet of {:?} {:?} blocks (stem {}, widths {:?})",
                s.blocks, s.block, s.stem, s.widths
            ),
        }
    }

    /// Channels of the pooled features the head reads (2048 for resnet50).
    pub fn features(&self) -> usize {
        self.widths[3] * self.block.expansion()
    }

    /// Every block as (name, input channels, width, stride, has downsample).
    pub fn block_plan(&self) -> Vec<(String, usize, usize, usize, bool)> {
        let mut plan = Vec::new();
        let mut cin = self.stem;
        for (stage, (&n, &width)) in self.blocks.iter().zip(&self.widths).enumerate() {
            for i in 0..n {
                let stride = if i == 0 && stage > 0 { 2 } else { 1 };
                let cout = width * self.block.expansion();
                let downsample = stride != 1 || cin != cout;
                plan.push((
                    format!("layer{}.{i}", stage + 1),
                    cin,
                    width,
                    stride,
                    downsample,
                ));
                cin = cout;
            }
        }
        plan
    }

    /// The spatial size after the stem (conv 7×7/2 pad 3, pool 3×3/2 pad 1)
    /// and after each stage, for a `size`×`size` input.
    pub fn sides(&self, size: usize) -> [usize; 6] {
        let conv = |s: usize, k: usize, stride: usize, p: usize| (s + 2 * p - k) / stride + 1;
        let stem = conv(size, 7, 2, 3);
        let pool = conv(stem, 3, 2, 1);
        let l2 = conv(pool, 3, 2, 1);
        let l3 = conv(l2, 3, 2, 1);
        let l4 = conv(l3, 3, 2, 1);
        [stem, pool, pool, l2, l3, l4]
    }

    /// Every convolution's geometry at `size`×`size` and `batch` samples, in
    /// order: the stem, then each block's convs and downsample (for the
    /// profiler's FLOP counts).
    pub fn convs(&self, size: usize, batch: usize) -> Result<Vec<ConvGeometry>> {
        let geometry = |cin: usize, side: usize, cout: usize, k: usize, stride: usize| {
            let config = Conv2dConfig {
                stride,
                padding: Padding::Explicit(k / 2),
            };
            ConvGeometry::new(&[batch, cin, side, side], &[cout, cin, k, k], config)
        };
        let sides = self.sides(size);
        let mut out = vec![geometry(3, size, self.stem, 7, 2)?];
        let mut side = sides[1];
        for (_, cin, width, stride, downsample) in self.block_plan() {
            let cout = width * self.block.expansion();
            let after = (side + 2 - 3) / stride + 1;
            match self.block {
                BlockKind::Basic => {
                    out.push(geometry(cin, side, width, 3, stride)?);
                    out.push(geometry(width, after, width, 3, 1)?);
                }
                BlockKind::Bottleneck => {
                    out.push(geometry(cin, side, width, 1, 1)?);
                    out.push(geometry(width, side, width, 3, stride)?);
                    out.push(geometry(width, after, cout, 1, 1)?);
                }
            }
            if downsample {
                out.push(geometry(cin, side, cout, 1, stride)?);
            }
            side = after;
        }
        Ok(out)
    }

    /// The summary's rows: stem, the four stages, pooling, head.
    pub fn describe(&self, size: usize, labels: usize) -> Vec<LayerInfo> {
        let sides = self.sides(size);
        let mut rows = Vec::new();
        let stem_params = 3 * self.stem * 49 + 2 * self.stem;
        rows.push(LayerInfo {
            name: "conv1, bn1, maxpool".into(),
            spec: LayerSpec::Residual(ResidualRow::Stem),
            output: vec![self.stem, sides[1], sides[1]],
            trainable: stem_params,
            non_trainable: 2 * self.stem,
        });
        let plan = self.block_plan();
        for (stage, (&blocks, &width)) in self.blocks.iter().zip(&self.widths).enumerate() {
            let prefix = format!("layer{}.", stage + 1);
            let (mut trainable, mut stats) = (0, 0);
            for (_, cin, w, _, ds) in plan.iter().filter(|b| b.0.starts_with(&prefix)) {
                let (t, s) = self.block_counts(*cin, *w, *ds);
                trainable += t;
                stats += s;
            }
            let side = sides[stage + 2];
            rows.push(LayerInfo {
                name: format!("layer{}", stage + 1),
                spec: LayerSpec::Residual(ResidualRow::Stage {
                    blocks,
                    width,
                    block: self.block,
                }),
                output: vec![width * self.block.expansion(), side, side],
                trainable,
                non_trainable: stats,
            });
        }
        rows.push(LayerInfo {
            name: "avgpool".into(),
            spec: LayerSpec::Residual(ResidualRow::AvgPool),
            output: vec![self.features()],
            trainable: 0,
            non_trainable: 0,
        });
        rows.push(LayerInfo {
            name: "fc".into(),
            spec: LayerSpec::Dense {
                units: labels,
                activation: Activation::Sigmoid,
            },
            output: vec![labels],
            trainable: self.features() * labels + labels,
            non_trainable: 0,
        });
        rows
    }

    /// (trainable, statistics) of one block.
    fn block_counts(&self, cin: usize, width: usize, downsample: bool) -> (usize, usize) {
        let cout = width * self.block.expansion();
        let convs: &[(usize, usize, usize)] = match self.block {
            BlockKind::Basic => &[(cin, width, 3), (width, width, 3)],
            BlockKind::Bottleneck => &[(cin, width, 1), (width, width, 3), (width, cout, 1)],
        };
        let ds = [(cin, cout, 1)];
        let all = convs.iter().chain(if downsample { &ds[..] } else { &[] });
        all.fold((0, 0), |(t, s), &(i, o, k)| {
            (t + i * o * k * k + 2 * o, s + 2 * o)
        })
    }

    /// (trainable, batch-norm statistics) counts for `labels` outputs.
    pub fn param_counts(&self, labels: usize) -> (usize, usize) {
        self.describe(224, labels)
            .iter()
            .fold((0, 0), |(t, s), r| (t + r.trainable, s + r.non_trainable))
    }
}

/// Which parameters train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Freeze {
    /// Every parameter (full fine-tuning), batch norms in training mode.
    #[default]
    None,
    /// Only the head (`fc`) trains; every batch norm of the backbone uses its
    /// moving statistics and keeps them ([`BnStatistics::Frozen`]). The
    /// sources' transfer-learning recipe.
    Backbone,
}

impl std::str::FromStr for Freeze {
    type Err = Error;
    fn from_str(s: &str) -> Result<Freeze> {
        match s {
            "none" => Ok(Freeze::None),
            "backbone" => Ok(Freeze::Backbone),
            _ => Err(Error::Config {
                what: "--freeze".into(),
                message: format!("unknown value `{s}`; choose none or backbone"),
            }),
        }
    }
}

/// ImageNet's per-channel mean and standard deviation, which torchvision's
/// pretrained weights expect their inputs normalised with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A bias-free conv followed by its batch norm.
pub struct ConvBn {
    pub conv: Param,
    pub gamma: Param,
    pub beta: Param,
    pub state: BatchNormState,
    /// The batch norm's name (`layer1.0.bn1`), for its statistics.
    pub bn_name: String,
    pub config: Conv2dConfig,
}

impl ConvBn {
    /// He-normal (fan-out) kernel as torchvision initialises it; γ 1, β 0,
    /// moving mean 0 and variance 1.
    #[allow(clippy::too_many_arguments)] // the conv's names and geometry, as torchvision spells a layer
    fn new(
        gpu: &Gpu,
        conv_name: &str,
        bn_name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        rng: &mut Rng,
    ) -> Result<ConvBn> {
        let std = (2.0 / (cout * k * k) as f64).sqrt();
        let w: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| (rng.normal() * std) as f32)
            .collect();
        let (gamma, beta, state) = torch_bn(gpu, bn_name, cout)?;
        Ok(ConvBn {
            conv: Param::new(
                gpu,
                format!("{conv_name}.weight"),
                Tensor::from_slice(gpu, [cout, cin, k, k], &w)?,
            )?,
            gamma,
            beta,
            state,
            bn_name: bn_name.to_string(),
            config: Conv2dConfig {
                stride,
                padding: Padding::Explicit(k / 2),
            },
        })
    }

    /// bn(conv(x)); with a frozen batch norm the weights enter the tape as
    /// constants, so no gradient is computed for them (nor, before the
    /// first trainable op, for anything else).
    fn forward(&self, tape: &Tape, x: &Var, bn: BatchNormConfig) -> Result<Var> {
        let var = |p: &Param| match bn.statistics {
            BnStatistics::Frozen => tape.constant(p.value.clone()),
            BnStatistics::FollowTape => tape.param(p),
        };
        let z = conv2d(tape, x, &var(&self.conv), None, self.config)?;
        let (g, b) = (var(&self.gamma), var(&self.beta));
        batch_norm(tape, &z, &g, &b, &self.state, bn)
    }

    fn params(&self) -> [&Param; 3] {
        [&self.conv, &self.gamma, &self.beta]
    }
}

/// γ (`.weight`), β (`.bias`) and the moving statistics of a batch norm
/// named as torchvision names it.
fn torch_bn(gpu: &Gpu, name: &str, c: usize) -> Result<(Param, Param, BatchNormState)> {
    let (gamma, beta, state) = bn_params(gpu, name, c)?;
    let rename = |p: Param, to: &str| Param {
        name: format!("{name}.{to}"),
        ..p
    };
    Ok((rename(gamma, "weight"), rename(beta, "bias"), state))
}

/// A residual block: its convs (two or three) and its optional downsample.
pub struct Block {
    pub kind: BlockKind,
    pub convs: Vec<ConvBn>,
    pub downsample: Option<ConvBn>,
}

impl Block {
    fn new(
        gpu: &Gpu,
        kind: BlockKind,
        name: &str,
        (cin, width, stride, downsample): (usize, usize, usize, bool),
        rng: &mut Rng,
    ) -> Result<Block> {
        let cout = width * kind.expansion();
        let mut conv = |i: usize, cin: usize, cout: usize, k: usize, stride: usize| {
            let (c, b) = (format!("{name}.conv{i}"), format!("{name}.bn{i}"));
            ConvBn::new(gpu, &c, &b, cin, cout, k, stride, rng)
        };
        let convs = match kind {
            BlockKind::Basic => vec![
                conv(1, cin, width, 3, stride)?,
                conv(2, width, width, 3, 1)?,
            ],
            BlockKind::Bottleneck => vec![
                conv(1, cin, width, 1, 1)?,
                conv(2, width, width, 3, stride)?,
                conv(3, width, cout, 1, 1)?,
            ],
        };
        let downsample = if downsample {
            let (c, b) = (
                format!("{name}.downsample.0"),
                format!("{name}.downsample.1"),
            );
            Some(ConvBn::new(gpu, &c, &b, cin, cout, 1, stride, rng)?)
        } else {
            None
        };
        Ok(Block {
            kind,
            convs,
            downsample,
        })
    }

    /// relu(convs(x) + shortcut(x)): torchvision's `Bottleneck.forward` and
    /// `BasicBlock.forward`, relu after every batch norm but the last.
    fn forward(&self, tape: &Tape, x: &Var, bn: BatchNormConfig) -> Result<Var> {
        let identity = match &self.downsample {
            Some(d) => d.forward(tape, x, bn)?,
            None => x.clone(),
        };
        let (last, inner) = self.convs.split_last().expect("a block has convs");
        let mut out = x.clone();
        for c in inner {
            out = relu(tape, &c.forward(tape, &out, bn)?)?;
        }
        let out = last.forward(tape, &out, bn)?;
        add_relu(tape, &out, &identity)
    }

    fn conv_bns(&self) -> impl Iterator<Item = &ConvBn> {
        self.convs.iter().chain(&self.downsample)
    }
}

/// A ResNet on the GPU: stem, four stages of blocks, pooled features, head.
pub struct ResNet {
    pub spec: ResNetSpec,
    pub stem: ConvBn,
    pub blocks: Vec<Block>,
    /// The head: [features, labels] and [labels].
    pub fc_kernel: Param,
    pub fc_bias: Param,
    pub freeze: Freeze,
    /// torchvision's batch-norm settings (momentum 0.9 in Keras's terms, ε 1e-5).
    pub batchnorm: BatchNormConfig,
    /// ImageNet mean (as moving mean) and variance (as moving variance) for
    /// the input normalisation, which runs as a frozen batch norm with ε 0.
    normalise: BatchNormState,
    ones: Tensor,
    zeros: Tensor,
}

impl ResNet {
    /// torchvision's initialisation drawn from `seed`: He-normal (fan-out)
    /// convs, γ 1, β 0, and the head as `nn.Linear` starts (uniform in
    /// ±1/√features for weights and bias).
    pub fn new(gpu: &Gpu, spec: ResNetSpec, labels: usize, seed: u64) -> Result<ResNet> {
        let mut rng = Rng::new(seed);
        let stem = ConvBn::new(gpu, "conv1", "bn1", 3, spec.stem, 7, 2, &mut rng)?;
        let mut blocks = Vec::new();
        for (name, cin, width, stride, ds) in spec.block_plan() {
            let geometry = (cin, width, stride, ds);
            blocks.push(Block::new(gpu, spec.block, &name, geometry, &mut rng)?);
        }
        let f = spec.features();
        let bound = 1.0 / (f as f64).sqrt();
        let w = rng.vec_f32(f * labels, -bound, bound);
        let b = rng.vec_f32(labels, -bound, bound);
        let normalise = BatchNormState::new(gpu, 3)?;
        normalise.moving_mean.write(gpu, &IMAGENET_MEAN)?;
        let var: Vec<f32> = IMAGENET_STD.iter().map(|s| s * s).collect();
        normalise.moving_var.write(gpu, &var)?;
        Ok(ResNet {
            spec,
            stem,
            blocks,
            fc_kernel: Param::new(gpu, "fc.kernel", Tensor::from_slice(gpu, [f, labels], &w)?)?,
            fc_bias: Param::new(gpu, "fc.bias", Tensor::from_slice(gpu, [labels], &b)?)?,
            freeze: Freeze::None,
            batchnorm: BatchNormConfig::TORCH,
            normalise,
            ones: Tensor::full(gpu, [3], 1.0, "normalise gamma")?,
            zeros: Tensor::zeros(gpu, [3], "normalise beta")?,
        })
    }

    /// Outputs of the head.
    pub fn labels(&self) -> usize {
        self.fc_bias.value.numel()
    }

    /// The backbone's batch-norm settings under the current [`Freeze`].
    fn backbone_bn(&self) -> BatchNormConfig {
        BatchNormConfig {
            statistics: match self.freeze {
                Freeze::None => BnStatistics::FollowTape,
                Freeze::Backbone => BnStatistics::Frozen,
            },
            ..self.batchnorm
        }
    }

    /// Pooled features [batch, features] of images [batch, 3, size, size]
    /// with values in [0, 1].
    pub fn features(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let bn = self.backbone_bn();
        // (x − mean) / std per channel: a frozen batch norm, γ 1, β 0, ε 0
        let normalise = BatchNormConfig {
            epsilon: 0.0,
            statistics: BnStatistics::Frozen,
            ..BatchNormConfig::TORCH
        };
        let (ones, zeros) = (
            tape.constant(self.ones.clone()),
            tape.constant(self.zeros.clone()),
        );
        let x = batch_norm(tape, x, &ones, &zeros, &self.normalise, normalise)?;
        let h = relu(tape, &self.stem.forward(tape, &x, bn)?)?;
        let mut h = maxpool(tape, &h, MaxPoolConfig::RESNET)?;
        for b in &self.blocks {
            h = b.forward(tape, &h, bn)?;
        }
        avgpool(tape, &h)
    }

    /// Probabilities [batch, labels] from pooled features.
    pub fn head(&self, tape: &Tape, features: &Var) -> Result<Var> {
        let (w, b) = (tape.param(&self.fc_kernel), tape.param(&self.fc_bias));
        sigmoid(tape, &dense(tape, features, &w, &b)?)
    }

    /// Probabilities [batch, labels] for images [batch, 3, size, size].
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let f = self.features(tape, x)?;
        self.head(tape, &f)
    }

    fn backbone(&self) -> impl Iterator<Item = &ConvBn> {
        std::iter::once(&self.stem).chain(self.blocks.iter().flat_map(|b| b.conv_bns()))
    }

    /// Every parameter, backbone then head, in torchvision's order.
    pub fn all_params(&self) -> Vec<&Param> {
        let mut out: Vec<&Param> = self.backbone().flat_map(|c| c.params()).collect();
        out.extend([&self.fc_kernel, &self.fc_bias]);
        out
    }

    /// The parameters that train under the current [`Freeze`].
    pub fn params(&self) -> Vec<&Param> {
        match self.freeze {
            Freeze::None => self.all_params(),
            Freeze::Backbone => vec![&self.fc_kernel, &self.fc_bias],
        }
    }

    /// Every tensor a checkpoint holds, by torchvision's name: the
    /// parameters, then each batch norm's `running_mean` and `running_var`.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out: Vec<(String, &Tensor)> = self
            .all_params()
            .into_iter()
            .map(|p| (p.name.clone(), &p.value))
            .collect();
        for c in self.backbone() {
            out.push((format!("{}.running_mean", c.bn_name), &c.state.moving_mean));
            out.push((format!("{}.running_var", c.bn_name), &c.state.moving_var));
        }
        out
    }
}
