//! Layers and models built from the ops.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::{
    batch_norm, binary_cross_entropy, conv2d, dense, dropout, flatten, maxpool, relu, sigmoid,
    BatchNormConfig, BatchNormState, Conv2dConfig, DropoutConfig, MaxPoolConfig,
};
use crate::rng::Rng;
use crate::tape::{Param, Tape, Var};
use crate::tensor::Tensor;

/// Glorot (Xavier) uniform: U(−l, l) with l = √(6 / (fan_in + fan_out)), as Keras.
pub fn glorot_uniform(rng: &mut Rng, fan_in: usize, fan_out: usize, n: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    rng.vec_f32(n, -limit, limit)
}

/// A fully connected layer: y = x · w + b, w: [in, out] glorot-uniform, b zero.
pub struct DenseLayer {
    pub w: Param,
    pub b: Param,
}

impl DenseLayer {
    pub fn new(
        gpu: &Gpu,
        name: &str,
        inputs: usize,
        outputs: usize,
        rng: &mut Rng,
    ) -> Result<Self> {
        let w = Tensor::from_slice(
            gpu,
            [inputs, outputs],
            &glorot_uniform(rng, inputs, outputs, inputs * outputs),
        )?;
        let b = Tensor::zeros(gpu, [outputs], "bias")?;
        Ok(DenseLayer {
            w: Param::new(gpu, format!("{name}.kernel"), w)?,
            b: Param::new(gpu, format!("{name}.bias"), b)?,
        })
    }

    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        dense(tape, x, &tape.param(&self.w), &tape.param(&self.b))
    }

    pub fn inputs(&self) -> usize {
        self.w.value.dims()[0]
    }
}

/// Activation after a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Sigmoid,
}

/// A feed-forward network: dense layers, relu between them, sigmoid at the
/// end (multi-label probabilities).
pub struct Mlp {
    pub layers: Vec<DenseLayer>,
}

impl Mlp {
    /// `sizes` = [inputs, hidden…, outputs].
    pub fn new(gpu: &Gpu, sizes: &[usize], seed: u64) -> Result<Mlp> {
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(Error::Config {
                what: "mlp".into(),
                message: format!("layer sizes must be at least [in, out], all > 0; got {sizes:?}"),
            });
        }
        let mut rng = Rng::new(seed);
        let layers = sizes
            .windows(2)
            .enumerate()
            .map(|(i, s)| DenseLayer::new(gpu, &format!("dense_{i}"), s[0], s[1], &mut rng))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    /// Probabilities [batch, outputs].
    pub fn forward(&self, tape: &Tape, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(tape, &h)?;
            let act = if i + 1 == self.layers.len() {
                Activation::Sigmoid
            } else {
                Activation::Relu
            };
            h = match act {
                Activation::Relu => relu(tape, &h)?,
                Activation::Sigmoid => sigmoid(tape, &h)?,
            };
        }
        Ok(h)
    }

    /// Forward + BCE loss.
    pub fn loss(&self, tape: &Tape, x: &Var, y: &Var) -> Result<Var> {
        let p = self.forward(tape, x)?;
        binary_cross_entropy(tape, &p, y)
    }

    pub fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| [&l.w, &l.b]).collect()
    }

    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.numel()).sum()
    }
}

/// One convolution block of the poster model, in Keras's order:
/// Conv2D (relu inside) → BatchNormalization → MaxPooling2D → Dropout.
pub struct ConvBlock {
    pub w: Param,
    pub b: Param,
    pub gamma: Param,
    pub beta: Param,
    pub bn: BatchNormState,
    pub dropout: f32,
}

/// One hidden dense block: Dense (relu inside) → BatchNormalization → Dropout.
pub struct DenseBlock {
    pub layer: DenseLayer,
    pub gamma: Param,
    pub beta: Param,
    pub bn: BatchNormState,
    pub dropout: f32,
}

/// The tutorial's poster model (GUIDE §1) for square inputs of `size` pixels
/// and `labels` outputs: four conv blocks (16, 32, 64, 128 channels, 3×3),
/// two dense blocks of 128, a sigmoid head.
pub struct PosterModel {
    pub size: usize,
    pub convs: Vec<ConvBlock>,
    pub dense: Vec<DenseBlock>,
    pub head: DenseLayer,
    /// Seeds the dropout masks (with the layer index and the step).
    pub seed: u64,
}

fn bn_params(gpu: &Gpu, name: &str, c: usize) -> Result<(Param, Param, BatchNormState)> {
    let ones = Tensor::uninit(gpu, [c], "gamma")?;
    crate::ops::fill(gpu, &ones, 1.0)?;
    Ok((
        Param::new(gpu, format!("{name}.gamma"), ones)?,
        Param::new(
            gpu,
            format!("{name}.beta"),
            Tensor::zeros(gpu, [c], "beta")?,
        )?,
        BatchNormState::new(gpu, c)?,
    ))
}

impl PosterModel {
    /// Spatial size after each conv block, or an error naming the block whose
    /// output would be empty and the smallest input size that works.
    pub fn feature_sizes(size: usize) -> Result<Vec<usize>> {
        let mut s = size;
        let mut out = Vec::new();
        for i in 0..4 {
            if s < 4 {
                // each block maps s → (s − 2)/2 and needs s ≥ 4: invert from 4
                let need = (0..3).fold(4usize, |m, _| 2 * m + 2); // 4 → 10 → 22 → 46
                return Err(Error::Config {
                    what: format!("input size {size}"),
                    message: format!(
                        "conv block {} would receive {s}×{s} pixels, but its 3×3 conv and 2×2 pooling \
                         need at least 4×4; the smallest input that works is {need}×{need}",
                        i + 1
                    ),
                });
            }
            s = (s - 2) / 2;
            out.push(s);
        }
        Ok(out)
    }

    pub fn new(gpu: &Gpu, size: usize, labels: usize, seed: u64) -> Result<PosterModel> {
        let sizes = Self::feature_sizes(size)?;
        let mut rng = Rng::new(seed);
        let channels = [3usize, 16, 32, 64, 128];
        let rates = [0.3f32, 0.3, 0.4, 0.5];
        let mut convs = Vec::new();
        for i in 0..4 {
            let (cin, cout) = (channels[i], channels[i + 1]);
            let w = glorot_uniform(&mut rng, cin * 9, cout * 9, cout * cin * 9);
            let name = format!("conv2d_{i}");
            let (gamma, beta, bn) = bn_params(gpu, &format!("batch_normalization_{i}"), cout)?;
            convs.push(ConvBlock {
                w: Param::new(
                    gpu,
                    format!("{name}.kernel"),
                    Tensor::from_slice(gpu, [cout, cin, 3, 3], &w)?,
                )?,
                b: Param::new(
                    gpu,
                    format!("{name}.bias"),
                    Tensor::zeros(gpu, [cout], "bias")?,
                )?,
                gamma,
                beta,
                bn,
                dropout: rates[i],
            });
        }
        let flat = 128 * sizes[3] * sizes[3];
        let mut dense = Vec::new();
        for (i, inputs) in [flat, 128].into_iter().enumerate() {
            let (gamma, beta, bn) = bn_params(gpu, &format!("batch_normalization_{}", 4 + i), 128)?;
            dense.push(DenseBlock {
                layer: DenseLayer::new(gpu, &format!("dense_{i}"), inputs, 128, &mut rng)?,
                gamma,
                beta,
                bn,
                dropout: 0.5,
            });
        }
        let head = DenseLayer::new(gpu, "dense_2", 128, labels, &mut rng)?;
        Ok(PosterModel {
            size,
            convs,
            dense,
            head,
            seed,
        })
    }

    /// Probabilities [batch, labels] for images [batch, 3, size, size].
    /// `step` varies the dropout masks from one training step to the next.
    pub fn forward(&self, tape: &Tape, x: &Var, step: u32) -> Result<Var> {
        let bn = BatchNormConfig::default();
        let drop = |layer: usize, rate: f32| DropoutConfig {
            rate,
            seed: (self.seed as u32)
                .wrapping_mul(31)
                .wrapping_add(layer as u32),
            step,
        };
        let mut h = x.clone();
        for (i, c) in self.convs.iter().enumerate() {
            h = conv2d(
                tape,
                &h,
                &tape.param(&c.w),
                &tape.param(&c.b),
                Conv2dConfig::default(),
            )?;
            h = relu(tape, &h)?;
            h = batch_norm(
                tape,
                &h,
                &tape.param(&c.gamma),
                &tape.param(&c.beta),
                &c.bn,
                bn,
            )?;
            h = maxpool(tape, &h, MaxPoolConfig::default())?;
            h = dropout(tape, &h, drop(i, c.dropout))?;
        }
        h = flatten(tape, &h)?;
        for (i, d) in self.dense.iter().enumerate() {
            h = d.layer.forward(tape, &h)?;
            h = relu(tape, &h)?;
            h = batch_norm(
                tape,
                &h,
                &tape.param(&d.gamma),
                &tape.param(&d.beta),
                &d.bn,
                bn,
            )?;
            h = dropout(tape, &h, drop(4 + i, d.dropout))?;
        }
        let logits = self.head.forward(tape, &h)?;
        sigmoid(tape, &logits)
    }

    /// Forward + BCE loss.
    pub fn loss(&self, tape: &Tape, x: &Var, y: &Var, step: u32) -> Result<Var> {
        let p = self.forward(tape, x, step)?;
        binary_cross_entropy(tape, &p, y)
    }

    /// Trainable parameters, in a fixed order.
    pub fn params(&self) -> Vec<&Param> {
        let mut out = Vec::new();
        for c in &self.convs {
            out.extend([&c.w, &c.b, &c.gamma, &c.beta]);
        }
        for d in &self.dense {
            out.extend([&d.layer.w, &d.layer.b, &d.gamma, &d.beta]);
        }
        out.extend([&self.head.w, &self.head.b]);
        out
    }

    /// (trainable, non-trainable) parameter counts; the non-trainable ones
    /// are the batch-norm moving statistics.
    pub fn param_counts(&self) -> (usize, usize) {
        let trainable = self.params().iter().map(|p| p.value.numel()).sum();
        let moving: usize = self
            .convs
            .iter()
            .map(|c| &c.bn)
            .chain(self.dense.iter().map(|d| &d.bn))
            .map(|s| s.moving_mean.numel() + s.moving_var.numel())
            .sum();
        (trainable, moving)
    }
}
