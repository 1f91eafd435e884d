//! The small MLP on synthetic multi-label tabular data, the engine's own
//! learning proof (tests/training.rs).

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::Mlp;
use crate::ops::{add_scaled, Adam, AdamConfig};
use crate::rng::Rng;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

/// Settings of the MLP run on the embedded synthetic multi-label data.
#[derive(Clone, Debug)]
pub struct MlpTrainConfig {
    pub rows: usize,
    pub features: usize,
    pub labels: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub val_split: f64,
    pub adam: AdamConfig,
    pub seed: u64,
}

impl Default for MlpTrainConfig {
    fn default() -> Self {
        MlpTrainConfig {
            rows: 4000,
            features: 32,
            labels: 10,
            hidden: 64,
            epochs: 20,
            batch: 32,
            val_split: 0.15,
            adam: AdamConfig::default(),
            seed: 0,
        }
    }
}

/// What a run ended with.
#[derive(Clone, Debug)]
pub struct MlpTrainSummary {
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    /// BCE of predicting each label's training frequency, on the validation set.
    pub val_prior_bce: f64,
}

/// Mean BCE of the model on a dataset (inference mode, batch by batch).
pub fn evaluate_bce(gpu: &Gpu, model: &Mlp, data: &Dataset, batch: usize) -> Result<f64> {
    let mut total = 0.0;
    let idx: Vec<usize> = (0..data.n).collect();
    for chunk in idx.chunks(batch) {
        let (x, y) = data.gather(chunk);
        let tape = Tape::new(gpu, Mode::Inference);
        let xv = tape.constant(Tensor::from_slice(gpu, [chunk.len(), data.features], &x)?);
        let yv = tape.constant(Tensor::from_slice(gpu, [chunk.len(), data.labels], &y)?);
        let loss = model.loss(&tape, &xv, &yv)?.value.to_vec(gpu)?[0] as f64;
        total += loss * chunk.len() as f64;
    }
    Ok(total / data.n as f64)
}

/// Trains an MLP (features → hidden → hidden → labels) on synthetic data,
/// reporting one line per epoch through `report`.
pub fn train_mlp_synthetic(
    gpu: &Gpu,
    config: &MlpTrainConfig,
    mut report: impl FnMut(String),
) -> Result<MlpTrainSummary> {
    if config.batch == 0 {
        return Err(Error::Config {
            what: "--batch".into(),
            message: "must be at least 1".into(),
        });
    }
    config.adam.validate()?;
    let data =
        Dataset::synthetic_multilabel(config.rows, config.features, config.labels, config.seed);
    let (train, val) = data.split(config.val_split);
    let prior = train.label_prior();
    let val_prior_bce = val.prior_bce(&prior);
    let model = Mlp::new(
        gpu,
        &[config.features, config.hidden, config.hidden, config.labels],
        config.seed,
    )?;
    let params = model.params();
    let mut adam = Adam::new(gpu, &params, config.adam)?;
    let mut rng = Rng::new(config.seed ^ 0x5EED);
    report(format!(
        "mlp {}→{}→{}→{} ({} parameters) on synthetic multi-label data: {} train / {} val rows; \
         label-prior baseline val_loss {:.4}",
        config.features,
        config.hidden,
        config.hidden,
        config.labels,
        model.param_count(),
        train.n,
        val.n,
        val_prior_bce
    ));
    let mut summary = MlpTrainSummary {
        train_loss: vec![],
        val_loss: vec![],
        val_prior_bce,
    };
    for epoch in 1..=config.epochs {
        let mut order: Vec<usize> = (0..train.n).collect();
        rng.shuffle(&mut order);
        // Losses stay on the GPU; the epoch's mean is read back once.
        let loss_sum = Tensor::zeros(gpu, [1], "loss sum")?;
        for chunk in order.chunks(config.batch) {
            let (x, y) = train.gather(chunk);
            let tape = Tape::new(gpu, Mode::Training);
            let xv = tape.constant(Tensor::from_slice(gpu, [chunk.len(), train.features], &x)?);
            let yv = tape.constant(Tensor::from_slice(gpu, [chunk.len(), train.labels], &y)?);
            let loss = model.loss(&tape, &xv, &yv)?;
            tape.backward(&loss)?;
            adam.step(gpu, &params)?;
            add_scaled(
                gpu,
                &loss.value,
                chunk.len() as f32 / train.n as f32,
                &loss_sum,
            )?;
        }
        let train_loss = loss_sum.to_vec(gpu)?[0] as f64;
        let val_loss = evaluate_bce(gpu, &model, &val, 256)?;
        report(format!(
            "epoch {epoch:>3}/{}: loss {train_loss:.4}  val_loss {val_loss:.4}",
            config.epochs
        ));
        summary.train_loss.push(train_loss);
        summary.val_loss.push(val_loss);
    }
    Ok(summary)
}
