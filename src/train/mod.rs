//! Training loops: the poster models on posters (the `train` command), and
//! the small MLP on synthetic tabular data that the engine's own tests use.
//!
//! One training step: the loader hands over a batch decoded ahead of time,
//! the model runs forward on the tape, `backward` fills every parameter's
//! gradient, Adam updates the parameters in place, and the loss and the
//! probabilities come back to the host (one read) for the progress bar and
//! the training metrics. After each epoch: validation in inference mode, then
//! the run directory is brought up to date, every file written atomically.
//!
//! [`train`] reads as the run's outline; each step lives in its own file:
//! - `data`: the dataset, its unusable images, the split and the size;
//! - `run_dir`: the run directory (its lock, its files, resuming from it);
//! - `epochs`: the epochs themselves (steps, validation, saving);
//! - `mlp`: the MLP on synthetic tabular data.

mod data;
mod epochs;
mod features;
mod mlp;
mod run_dir;

pub use data::{open_dataset, resolve_size, unusable_images};
pub use epochs::{predict_rows, Predictions};
pub use mlp::{evaluate_bce, train_mlp_synthetic, MlpTrainConfig, MlpTrainSummary};
pub use run_dir::replot;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::checkpoint::write_atomically;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::loader::{ImageCache, Loader};
use crate::metrics::Metrics;
use crate::nn::{Freeze, Model, ModelKind, ModelOptions};
use crate::ops::{Adam, AdamConfig, BatchNormConfig};
use crate::plot::EpochRecord;
use crate::posters::SyntheticConfig;

/// How to train: the tutorial's recipe exactly, or one tuned to learn more
/// from the same model in the same number of epochs (GUIDE §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Recipe {
    /// Keras's initialisation and the tutorial's dropout rates, no augmentation.
    Tutorial,
    /// Four changes, each a known remedy for what slows the tutorial's run:
    /// the output bias starts at the log-odds of each genre's training
    /// frequency (the model need not spend its first epochs learning base
    /// rates), batch-norm's moving statistics use momentum 0.9 instead of
    /// 0.99 (PyTorch's default; with 0.99 they still remember their initial
    /// 0/1 after a short run, and validation in inference mode suffers),
    /// every dropout rate is halved, and posters are mirrored left-right at
    /// random.
    Tuned,
}

impl std::str::FromStr for Recipe {
    type Err = Error;
    fn from_str(s: &str) -> Result<Recipe> {
        match s {
            "tutorial" => Ok(Recipe::Tutorial),
            "tuned" => Ok(Recipe::Tuned),
            _ => Err(Error::Config {
                what: "--recipe".into(),
                message: format!("unknown recipe `{s}`; choose tutorial or tuned"),
            }),
        }
    }
}

/// Settings of a `train` run. The defaults are the tutorial's (model
/// `poster`, 5 epochs, batch 32, Adam 1e-3, 15 % validation).
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// A directory with `train.csv` and `Images/`; None: the embedded synthetic posters.
    pub data: Option<PathBuf>,
    pub synthetic: SyntheticConfig,
    pub model: ModelKind,
    /// Pretrained weights (a torchvision state_dict, safetensors or .pth)
    /// for a ResNet; None: torchvision's initialisation.
    pub weights: Option<PathBuf>,
    /// What trains (ResNets): everything, or the head on cached features.
    pub freeze: Freeze,
    pub recipe: Recipe,
    /// Input size (square); None: 350 for real posters (400 for poster5),
    /// 48 for the synthetic ones (or the model's smallest size).
    pub size: Option<usize>,
    pub epochs: usize,
    pub batch: usize,
    pub adam: AdamConfig,
    pub seed: u64,
    pub val_split: f64,
    pub limit: Option<usize>,
    /// The run directory.
    pub out: PathBuf,
    /// Continue the run in `out` from its last completed epoch.
    pub resume: bool,
    /// Start afresh in an `out` that already holds a run (its files are
    /// replaced, each atomically, as the new run's epochs complete).
    pub force: bool,
    /// Stop at the first missing or unreadable image instead of skipping it.
    pub strict: bool,
    /// Decoded images are cached (u8) when all of them fit in this many bytes.
    pub cache_bytes: u64,
    /// Decoding threads.
    pub workers: usize,
    /// When set (by a Ctrl-C handler), training stops after the current
    /// step, writes `train_state.safetensors` there, and returns with
    /// [`TrainSummary::stopped`] telling where; `resume` continues from
    /// that very step.
    pub stop: Option<Arc<AtomicBool>>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            data: None,
            synthetic: SyntheticConfig::default(),
            model: ModelKind::Poster,
            weights: None,
            freeze: Freeze::None,
            recipe: Recipe::Tutorial,
            size: None,
            epochs: 5,
            batch: 32,
            adam: AdamConfig::default(),
            seed: 0,
            val_split: 0.15,
            limit: None,
            out: PathBuf::from("runs/default"),
            resume: false,
            force: false,
            strict: false,
            cache_bytes: 1 << 30,
            workers: Loader::default_workers(),
            stop: None,
        }
    }
}

/// The settings that must match for `--resume` to continue a run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub data: String,
    pub model: String,
    pub recipe: Recipe,
    pub size: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
    pub val_split: f64,
    pub limit: Option<usize>,
    pub train_posters: usize,
    pub val_posters: usize,
}

/// What happens during a run, for a progress display.
#[derive(Debug)]
pub enum Event<'a> {
    /// A line worth showing (what is being trained, on what).
    Info(String),
    /// Something skipped or suspicious.
    Warning(String),
    EpochStart {
        epoch: usize,
        epochs: usize,
        samples: usize,
    },
    /// After each step: posters done this epoch and the running mean loss.
    Step {
        samples: usize,
        loss: f64,
    },
    /// Validation started.
    Validating {
        samples: usize,
    },
    /// Features extracted so far with a frozen backbone (once per run).
    Extracting {
        done: usize,
        total: usize,
    },
    EpochEnd(&'a EpochRecord),
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub history: Vec<EpochRecord>,
    pub baseline: Metrics,
    pub last: Option<Metrics>,
    pub val_count: usize,
    pub skipped: usize,
    pub out: PathBuf,
    /// Where a run asked to stop ([`TrainConfig::stop`]) stopped; None when
    /// it completed its epochs.
    pub stopped: Option<StopPoint>,
}

/// Where an interrupted run stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopPoint {
    pub epoch: usize,
    /// Batches of `epoch` done, of `batches`.
    pub batch: usize,
    pub batches: usize,
    /// Optimizer steps taken in the whole run.
    pub step: u64,
}

/// The running sums of an epoch stopped part-way, saved in the training
/// state so that `--resume` carries on from the next batch with exactly the
/// numbers an uninterrupted epoch would have.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PartialEpoch {
    pub(crate) epoch: usize,
    pub(crate) batches_done: usize,
    pub(crate) loss_sum: f64,
    pub(crate) seen: usize,
    pub(crate) correct: usize,
    pub(crate) waited: f64,
    pub(crate) seconds: f64,
}

/// The JSON written to `metrics.json` and printed by `evaluate --json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricsReport {
    pub model: Metrics,
    pub baseline: Metrics,
    pub count: usize,
}

/// Trains `config.model` on the configured posters, writing the run
/// directory after every epoch.
pub fn train(gpu: &Gpu, config: &TrainConfig, mut on: impl FnMut(Event)) -> Result<TrainSummary> {
    if config.batch == 0 {
        return Err(Error::Config {
            what: "--batch".into(),
            message: "must be at least 1".into(),
        });
    }
    if config.epochs == 0 {
        return Err(Error::Config {
            what: "--epochs".into(),
            message: "must be at least 1 (to score a trained model, use `postergrad evaluate`)"
                .into(),
        });
    }
    config.adam.validate()?;
    // 1. The posters: usable images only, split, and the input size.
    let data = data::prepare(gpu, config, &mut on)?;
    // 2. The run directory, locked for the run's life.
    let _lock = run_dir::open(config)?;
    // 3. The model and its optimizer: fresh, or as the run left them.
    let tuned = config.recipe == Recipe::Tuned;
    let options = ModelOptions {
        freeze: config.freeze,
        ..if tuned {
            ModelOptions {
                dropout_scale: 0.5,
                batchnorm: BatchNormConfig {
                    momentum: 0.9,
                    ..Default::default()
                },
                ..Default::default()
            }
        } else {
            ModelOptions::default()
        }
    };
    let model = Model::with_options(
        gpu,
        config.model,
        data.size,
        data.genres(),
        config.seed,
        options,
    )?;
    if let Some(w) = &config.weights {
        let imported = crate::nn::weights::load_file(gpu, &model, w)?;
        on(Event::Info(describe_import(w, &imported, data.genres())));
    }
    if tuned {
        model.init_output_bias(gpu, &data.prior)?;
    }
    let mut adam = Adam::new(gpu, &model.params(), config.adam)?;
    let resumed = if config.resume {
        run_dir::resume(gpu, config, &data.settings, &model, &mut adam, &mut on)?
    } else {
        run_dir::Resumed::default()
    };
    write_atomically(
        &config.out.join("config.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "settings": data.settings,
            "epochs": config.epochs,
            "genres": data.set.genres,
            "adapter": gpu.adapter().to_string(),
            "postergrad": env!("CARGO_PKG_VERSION"),
        }))
        .unwrap_or_default()
        .as_bytes(),
    )?;
    let (trainable, frozen) = model.param_counts();
    on(Event::Info(format!(
        "model {} at {size}×{size}: {trainable} trainable + {frozen} non-trainable parameters; recipe {}",
        config.model,
        if tuned {
            "tuned (prior-initialised output bias, batch-norm momentum 0.9, dropout halved, random flips)"
        } else {
            "tutorial"
        },
        size = data.size,
    )));
    on(Event::Info(format!(
        "data: {}; {} train / {} validation posters (seed {}); run directory {}",
        data.set.describe(),
        data.train_rows.len(),
        data.val_rows.len(),
        config.seed,
        config.out.display()
    )));
    let cache = Arc::new(ImageCache::new(
        data.set.posters.len(),
        data.size,
        config.cache_bytes,
    ));
    on(Event::Info(format!(
        "decoded-image cache: {} ({:.0} MB for every poster at {size}×{size}, budget {:.0} MB)",
        if cache.enabled() {
            "on"
        } else {
            "off, decoding every epoch"
        },
        ImageCache::bytes_needed(data.set.posters.len(), data.size) as f64 / 1e6,
        config.cache_bytes as f64 / 1e6,
        size = data.size,
    )));
    // 4. With a frozen backbone and no augmentation: every poster's
    // features, once.
    let features = if config.freeze == Freeze::Backbone && !tuned {
        let mut rows = data.train_rows.clone();
        rows.extend(&data.val_rows);
        let set = data.set.clone();
        let t = features::extract_or_load(gpu, config, &model, &set, &cache, &rows, &mut on)?;
        Some(Arc::new(t))
    } else {
        None
    };
    // 5. The epochs.
    let start = resumed.start_epoch + 1;
    let mut run = epochs::Run::new(gpu, config, on, data, cache, model, adam, resumed);
    run.use_features(features);
    let stopped = run.epochs(start..=config.epochs)?;
    Ok(run.summary(stopped))
}

/// One line on what `--weights` loaded.
fn describe_import(
    path: &std::path::Path,
    i: &crate::nn::weights::Imported,
    genres: usize,
) -> String {
    use crate::nn::weights::Head;
    format!(
        "weights: {} tensors from {}{}{}; {}",
        i.loaded,
        path.display(),
        if i.converted > 0 {
            format!(" ({} converted from 16-bit floats)", i.converted)
        } else {
            String::new()
        },
        if i.ignored > 0 {
            format!(", {} num_batches_tracked counters not needed", i.ignored)
        } else {
            String::new()
        },
        match &i.head {
            Head::Loaded => "head (fc) loaded".to_string(),
            Head::Replaced { file_shape } =>
                format!("the file's head fc {file_shape:?} replaced by a fresh {genres}-genre head"),
        }
    )
}
