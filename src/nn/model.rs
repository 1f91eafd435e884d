//! A poster model built from its layer table: parameters, the forward pass
//! on the tape (with the fusions the ops offer), and its tensors by name.

use super::*;

impl ModelKind {
    pub const ALL: [ModelKind; 6] = [
        ModelKind::Poster,
        ModelKind::Poster5,
        ModelKind::Mlp,
        ModelKind::ResNet18,
        ModelKind::ResNet34,
        ModelKind::ResNet50,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Poster => "poster",
            ModelKind::Poster5 => "poster5",
            ModelKind::Mlp => "mlp",
            ModelKind::ResNet18 => "resnet18",
            ModelKind::ResNet34 => "resnet34",
            ModelKind::ResNet50 => "resnet50",
        }
    }

    /// The input size its tutorial (or torchvision) used.
    pub fn default_size(self) -> usize {
        match self {
            ModelKind::Poster | ModelKind::Mlp => 350,
            ModelKind::Poster5 => 400,
            ModelKind::ResNet18 | ModelKind::ResNet34 | ModelKind::ResNet50 => 224,
        }
    }

    /// The ResNet this kind is, if it is one.
    pub fn resnet(self) -> Option<ResNetSpec> {
        match self {
            ModelKind::ResNet18 => Some(ResNetSpec::RESNET18),
            ModelKind::ResNet34 => Some(ResNetSpec::RESNET34),
            ModelKind::ResNet50 => Some(ResNetSpec::RESNET50),
            _ => None,
        }
    }

    /// The layer list for `labels` outputs (empty for a ResNet, which is
    /// not sequential: `nn::resnet`).
    pub fn layers(self, labels: usize) -> Vec<LayerSpec> {
        use Activation::{Relu, Sigmoid};
        use LayerSpec::*;
        let mut l = Vec::new();
        match self {
            ModelKind::ResNet18 | ModelKind::ResNet34 | ModelKind::ResNet50 => return l,
            ModelKind::Poster => {
                for (filters, rate) in [(16, 0.3), (32, 0.3), (64, 0.4), (128, 0.5)] {
                    l.extend([
                        Conv2d {
                            filters,
                            kernel: 3,
                            activation: Relu,
                        },
                        BatchNorm,
                        MaxPool,
                        Dropout { rate },
                    ]);
                }
                l.push(Flatten);
                for _ in 0..2 {
                    l.extend([
                        Dense {
                            units: 128,
                            activation: Relu,
                        },
                        BatchNorm,
                        Dropout { rate: 0.5 },
                    ]);
                }
            }
            ModelKind::Poster5 => {
                for filters in [16, 32, 64, 64] {
                    l.extend([
                        Conv2d {
                            filters,
                            kernel: 5,
                            activation: Relu,
                        },
                        MaxPool,
                        Dropout { rate: 0.25 },
                    ]);
                }
                l.push(Flatten);
                for units in [128, 64] {
                    l.extend([
                        Dense {
                            units,
                            activation: Relu,
                        },
                        Dropout { rate: 0.5 },
                    ]);
                }
            }
            ModelKind::Mlp => {
                l.push(Flatten);
                for units in [64, 64, 32] {
                    l.push(Dense {
                        units,
                        activation: Relu,
                    });
                }
            }
        }
        l.push(Dense {
            units: labels,
            activation: Sigmoid,
        });
        l
    }

    /// Every layer with its Keras-style name, output shape and parameter
    /// counts, for square inputs of `size` pixels; an error names the layer
    /// whose output would be empty and the smallest size that works.
    pub fn describe(self, size: usize, labels: usize) -> Result<Vec<LayerInfo>> {
        if let Some(spec) = self.resnet() {
            return Ok(spec.describe(size, labels));
        }
        self.try_describe(size, labels).map_err(|(name, got)| {
            let min = (1..=4096)
                .find(|&s| self.try_describe(s, labels).is_ok())
                .unwrap_or(0);
            Error::Config {
                what: format!("--size {size}"),
                message: format!(
                    "model {self} collapses: layer {name} would receive {got}×{got} pixels and \
                     produce nothing; the smallest input size that works is {min} (--size {min})"
                ),
            }
        })
    }

    fn try_describe(
        self,
        size: usize,
        labels: usize,
    ) -> std::result::Result<Vec<LayerInfo>, (String, usize)> {
        let mut counts: std::collections::HashMap<&str, usize> = Default::default();
        let mut shape = vec![3, size, size];
        let mut out = Vec::new();
        for spec in self.layers(labels) {
            let base = spec.keras_name();
            let k = counts.entry(base).or_default();
            let name = if *k == 0 {
                base.to_string()
            } else {
                format!("{base}_{k}")
            };
            *k += 1;
            let (mut trainable, mut non_trainable) = (0, 0);
            match spec {
                LayerSpec::Conv2d {
                    filters, kernel, ..
                } => {
                    if shape[1] < kernel {
                        return Err((name, shape[1]));
                    }
                    trainable = filters * shape[0] * kernel * kernel + filters;
                    shape = vec![filters, shape[1] - kernel + 1, shape[2] - kernel + 1];
                }
                LayerSpec::MaxPool => {
                    if shape[1] < 2 {
                        return Err((name, shape[1]));
                    }
                    shape = vec![shape[0], shape[1] / 2, shape[2] / 2];
                }
                LayerSpec::BatchNorm => {
                    trainable = 2 * shape[0];
                    non_trainable = 2 * shape[0];
                }
                LayerSpec::Dropout { .. } => {}
                LayerSpec::Flatten => shape = vec![shape.iter().product()],
                LayerSpec::Dense { units, .. } => {
                    trainable = shape[0] * units + units;
                    shape = vec![units];
                }
                LayerSpec::Residual(_) => unreachable!("a sequential model has no residual rows"),
            }
            out.push(LayerInfo {
                name,
                spec,
                output: shape.clone(),
                trainable,
                non_trainable,
            });
        }
        Ok(out)
    }
}

/// A layer's place in a model: name, output shape (without the batch
/// dimension; [C, H, W] or [F]) and parameter counts.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    pub spec: LayerSpec,
    pub output: Vec<usize>,
    pub trainable: usize,
    pub non_trainable: usize,
}

/// The weights a layer owns.
pub enum Weights {
    None,
    /// Conv2D kernel [out, in, kh, kw] or Dense kernel [in, out], and the bias.
    Affine {
        w: Param,
        b: Param,
    },
    BatchNorm {
        gamma: Param,
        beta: Param,
        state: BatchNormState,
    },
}

/// A layer of a built model.
pub struct Layer {
    pub info: LayerInfo,
    pub weights: Weights,
}

/// A sequential model on the GPU (`poster`, `poster5` or `mlp`).
pub struct Model {
    pub kind: ModelKind,
    pub size: usize,
    pub labels: usize,
    /// Seeds the initialisation and the dropout masks.
    pub seed: u64,
    pub layers: Vec<Layer>,
    /// The network when `kind` is a ResNet (`layers` is then empty).
    pub resnet: Option<ResNet>,
    /// Momentum and ε of every batch-norm layer.
    pub batchnorm: BatchNormConfig,
    /// Whether layers run fused (the default) or one op per layer.
    pub fusion: Fusion,
}

/// How [`Model::forward`] maps layers to ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Fusion {
    /// A conv's batch norm, 2×2 max-pool and dropout run as one op,
    /// [`bnpool`] (the function of the three, computed in one pass over the
    /// tensor; `docs/kernels/bnpool.md`).
    #[default]
    BlockTail,
    /// One op per layer (the reference the fused ops are tested against).
    Off,
}

/// Departures from the Keras defaults (used by the `tuned` recipe), and
/// what trains (ResNets).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelOptions {
    /// Every dropout rate is multiplied by this (1: the model's own rates).
    pub dropout_scale: f32,
    /// The sequential models' batch norms (a ResNet keeps torchvision's).
    pub batchnorm: BatchNormConfig,
    pub freeze: Freeze,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            dropout_scale: 1.0,
            batchnorm: BatchNormConfig::default(),
            freeze: Freeze::None,
        }
    }
}

impl Model {
    /// Builds `kind` for `size`×`size` inputs and `labels` outputs, Keras's
    /// initialisation (glorot-uniform kernels, zero biases, γ = 1, β = 0,
    /// moving mean 0 and variance 1) drawn from `seed`.
    pub fn new(gpu: &Gpu, kind: ModelKind, size: usize, labels: usize, seed: u64) -> Result<Model> {
        Self::with_options(gpu, kind, size, labels, seed, ModelOptions::default())
    }

    /// As [`Model::new`], with other dropout rates or batch-norm settings.
    pub fn with_options(
        gpu: &Gpu,
        kind: ModelKind,
        size: usize,
        labels: usize,
        seed: u64,
        options: ModelOptions,
    ) -> Result<Model> {
        if labels == 0 {
            return Err(Error::Config {
                what: "model".into(),
                message: "needs at least one output (genre)".into(),
            });
        }
        if let Some(spec) = kind.resnet() {
            let mut net = ResNet::new(gpu, spec, labels, seed)?;
            net.freeze = options.freeze;
            return Ok(Model {
                kind,
                size,
                labels,
                seed,
                layers: Vec::new(),
                resnet: Some(net),
                batchnorm: BatchNormConfig::TORCH,
                fusion: Fusion::Off,
            });
        }
        if options.freeze != Freeze::None {
            return Err(Error::Config {
                what: "--freeze".into(),
                message: format!(
                    "model {kind} has no pretrained backbone to freeze; --freeze backbone is for \
                     the ResNets"
                ),
            });
        }
        let infos = kind.describe(size, labels)?;
        let mut rng = Rng::new(seed);
        let mut input = vec![3, size, size];
        let mut layers = Vec::new();
        for mut info in infos {
            if let LayerSpec::Dropout { rate } = &mut info.spec {
                *rate *= options.dropout_scale;
            }
            let name = &info.name;
            let weights = match info.spec {
                LayerSpec::Conv2d {
                    filters, kernel, ..
                } => {
                    let (cin, k2) = (input[0], kernel * kernel);
                    let w = glorot_uniform(&mut rng, cin * k2, filters * k2, filters * cin * k2);
                    Weights::Affine {
                        w: Param::new(
                            gpu,
                            format!("{name}.kernel"),
                            Tensor::from_slice(gpu, [filters, cin, kernel, kernel], &w)?,
                        )?,
                        b: Param::new(
                            gpu,
                            format!("{name}.bias"),
                            Tensor::zeros(gpu, [filters], "bias")?,
                        )?,
                    }
                }
                LayerSpec::Dense { units, .. } => {
                    let d = DenseLayer::new(gpu, name, input[0], units, &mut rng)?;
                    Weights::Affine { w: d.w, b: d.b }
                }
                LayerSpec::BatchNorm => {
                    let (gamma, beta, state) = bn_params(gpu, name, input[0])?;
                    Weights::BatchNorm { gamma, beta, state }
                }
                _ => Weights::None,
            };
            input = info.output.clone();
            layers.push(Layer { info, weights });
        }
        Ok(Model {
            kind,
            size,
            labels,
            seed,
            layers,
            resnet: None,
            batchnorm: options.batchnorm,
            fusion: Fusion::default(),
        })
    }

    /// Probabilities [batch, labels] for images [batch, 3, size, size].
    /// `step` varies the dropout masks from one training step to the next.
    pub fn forward(&self, tape: &Tape, x: &Var, step: u32) -> Result<Var> {
        self.forward_layers(tape, x, step, |_, _| Ok(()))
    }

    /// [`Model::forward`], handing each layer's output to `each` as it is
    /// computed (the non-finite diagnosis looks at them one by one). A conv
    /// or dense layer whose relu is fused into the batch norm after it hands
    /// on its pre-activation z; layers that run as one op ([`Fusion`]) each
    /// hand on that op's output.
    pub fn forward_layers(
        &self,
        tape: &Tape,
        x: &Var,
        step: u32,
        mut each: impl FnMut(&Layer, &Var) -> Result<()>,
    ) -> Result<Var> {
        let dims = x.shape().dims();
        if let (Some(net), true) = (&self.resnet, dims.len() == 2) {
            // cached features: the head alone
            return net.head(tape, x);
        }
        if dims.len() != 4 || dims[1..] != [3, self.size, self.size] {
            return Err(Error::Shape {
                op: "model",
                what: format!(
                    "input images of model {} at --size {}",
                    self.kind, self.size
                ),
                got: x.shape().clone(),
                expected: format!("[batch, 3, {0}, {0}]", self.size),
            });
        }
        if let Some(net) = &self.resnet {
            return net.forward(tape, x);
        }
        let mut h = x.clone();
        let mut dropouts = 0u32;
        let mut i = 0;
        while i < self.layers.len() {
            let layer = &self.layers[i];
            let activate = |z: Var, activation: Activation| match activation {
                Activation::Relu if self.relu_fused_after(i) => Ok(z),
                Activation::Relu => relu(tape, &z),
                Activation::Sigmoid => sigmoid(tape, &z),
            };
            // layers this step covers (more than one when fused)
            let mut covered = 1;
            h = match (&layer.info.spec, &layer.weights) {
                (LayerSpec::Conv2d { activation, .. }, Weights::Affine { w, b }) => {
                    let z = conv2d(
                        tape,
                        &h,
                        &tape.param(w),
                        Some(&tape.param(b)),
                        Conv2dConfig::default(),
                    )?;
                    activate(z, *activation)?
                }
                (LayerSpec::Dense { activation, .. }, Weights::Affine { w, b }) => {
                    let z = dense(tape, &h, &tape.param(w), &tape.param(b))?;
                    activate(z, *activation)?
                }
                (LayerSpec::BatchNorm, Weights::BatchNorm { gamma, beta, state }) => {
                    let input = if i > 0 && self.relu_fused_after(i - 1) {
                        BnInput::Relu
                    } else {
                        BnInput::AsIs
                    };
                    let config = BatchNormConfig {
                        input,
                        ..self.batchnorm
                    };
                    let (gamma, beta) = (tape.param(gamma), tape.param(beta));
                    if self.block_tail_at(i) {
                        // batch norm, max-pool (and dropout) as one op
                        covered = 2;
                        let dropout = match self.layers.get(i + 2).map(|l| &l.info.spec) {
                            Some(LayerSpec::Dropout { rate }) => {
                                covered = 3;
                                dropouts += 1;
                                Some(self.dropout_config(dropouts - 1, *rate, step))
                            }
                            _ => None,
                        };
                        let config = BnPoolConfig {
                            batchnorm: config,
                            dropout,
                        };
                        bnpool(tape, &h, &gamma, &beta, state, config)?
                    } else {
                        batch_norm(tape, &h, &gamma, &beta, state, config)?
                    }
                }
                (LayerSpec::MaxPool, _) => maxpool(tape, &h, MaxPoolConfig::default())?,
                (LayerSpec::Dropout { rate }, _) => {
                    let config = self.dropout_config(dropouts, *rate, step);
                    dropouts += 1;
                    dropout(tape, &h, config)?
                }
                (LayerSpec::Flatten, _) => flatten(tape, &h)?,
                (spec, _) => unreachable!("layer {spec:?} built without its weights"),
            };
            // each fused layer hands on the fused op's output
            for layer in &self.layers[i..i + covered] {
                each(layer, &h)?;
            }
            i += covered;
        }
        Ok(h)
    }

    /// Whether the batch norm at layer `i` runs fused with the max-pool after
    /// it (and a dropout after that) as one [`bnpool`] op.
    fn block_tail_at(&self, i: usize) -> bool {
        self.fusion == Fusion::BlockTail
            && self.layers[i].info.output.len() == 3
            && matches!(
                self.layers.get(i + 1).map(|l| &l.info.spec),
                Some(LayerSpec::MaxPool)
            )
    }

    /// Whether layer `i` ends in a relu that runs inside the batch norm
    /// after it (BnInput::Relu): the layer then hands on its pre-activation z.
    fn relu_fused_after(&self, i: usize) -> bool {
        let relu = matches!(
            self.layers[i].info.spec,
            LayerSpec::Conv2d {
                activation: Activation::Relu,
                ..
            } | LayerSpec::Dense {
                activation: Activation::Relu,
                ..
            }
        );
        relu && matches!(
            self.layers.get(i + 1).map(|l| &l.info.spec),
            Some(LayerSpec::BatchNorm)
        )
    }

    /// The mask of the `index`-th dropout layer at `step`.
    pub fn dropout_config(&self, index: u32, rate: f32, step: u32) -> DropoutConfig {
        DropoutConfig {
            rate,
            seed: (self.seed as u32).wrapping_mul(31).wrapping_add(index),
            step,
        }
    }

    /// Forward + BCE loss.
    pub fn loss(&self, tape: &Tape, x: &Var, y: &Var, step: u32) -> Result<Var> {
        let p = self.forward(tape, x, step)?;
        binary_cross_entropy(tape, &p, y)
    }

    /// Sets the output layer's bias to the log-odds of `prior` (each genre's
    /// training frequency, clipped to [1e-3, 1 − 1e-3]), so the untrained
    /// model already predicts the base rates instead of ½ everywhere.
    pub fn init_output_bias(&self, gpu: &Gpu, prior: &[f64]) -> Result<()> {
        let last = self.layers.last().map(|l| &l.weights);
        let b = match (&self.resnet, last) {
            (Some(net), _) => &net.fc_bias,
            (None, Some(Weights::Affine { b, .. })) => b,
            _ => {
                return Err(Error::Config {
                    what: "model".into(),
                    message: "the last layer has no bias".into(),
                })
            }
        };
        let logits: Vec<f32> = prior
            .iter()
            .map(|&p| {
                let p = p.clamp(1e-3, 1.0 - 1e-3);
                (p / (1.0 - p)).ln() as f32
            })
            .collect();
        b.value.write(gpu, &logits)
    }

    /// Trainable parameters, in layer order (kernel, bias, γ, β); a ResNet's
    /// under its [`Freeze`] (the head alone with a frozen backbone).
    pub fn params(&self) -> Vec<&Param> {
        if let Some(net) = &self.resnet {
            return net.params();
        }
        let mut out = Vec::new();
        for l in &self.layers {
            match &l.weights {
                Weights::Affine { w, b } => out.extend([w, b]),
                Weights::BatchNorm { gamma, beta, .. } => out.extend([gamma, beta]),
                Weights::None => {}
            }
        }
        out
    }

    /// The parameter called `name` ("conv2d_1.kernel").
    pub fn param(&self, name: &str) -> Option<&Param> {
        match &self.resnet {
            Some(net) => net.all_params().into_iter().find(|p| p.name == name),
            None => self.params().into_iter().find(|p| p.name == name),
        }
    }

    /// Everything a checkpoint holds, by name: the parameters, then each
    /// batch-norm layer's `moving_mean` and `moving_variance`.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        if let Some(net) = &self.resnet {
            return net.named_tensors();
        }
        let mut out: Vec<(String, &Tensor)> = self
            .params()
            .into_iter()
            .map(|p| (p.name.clone(), &p.value))
            .collect();
        for l in &self.layers {
            if let Weights::BatchNorm { state, .. } = &l.weights {
                out.push((format!("{}.moving_mean", l.info.name), &state.moving_mean));
                out.push((
                    format!("{}.moving_variance", l.info.name),
                    &state.moving_var,
                ));
            }
        }
        out
    }

    /// (trainable, non-trainable) parameter counts; the non-trainable ones
    /// are the batch-norm moving statistics.
    pub fn param_counts(&self) -> (usize, usize) {
        if let Some(net) = &self.resnet {
            let (all, stats) = net.spec.param_counts(self.labels);
            let trainable: usize = net.params().iter().map(|p| p.value.numel()).sum();
            return (trainable, stats + all - trainable);
        }
        let trainable = self.layers.iter().map(|l| l.info.trainable).sum();
        let frozen = self.layers.iter().map(|l| l.info.non_trainable).sum();
        (trainable, frozen)
    }
}

pub(super) fn bn_params(gpu: &Gpu, name: &str, c: usize) -> Result<(Param, Param, BatchNormState)> {
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
