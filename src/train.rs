//! Training loops: the poster models on posters (the `train` command), and
//! the small MLP on synthetic tabular data that the engine's own tests use.
//!
//! One training step: the loader hands over a batch decoded ahead of time,
//! the model runs forward on the tape, `backward` fills every parameter's
//! gradient, Adam updates the parameters in place, and the loss and the
//! probabilities come back to the host (one read) for the progress bar and
//! the training metrics. After each epoch: validation in inference mode, then
//! the run directory is brought up to date, every file written atomically.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, write_atomically, Checkpoint, CheckpointInfo};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::loader::{batches, ImageCache, Loader};
use crate::metrics::Metrics;
use crate::nn::{Mlp, Model, ModelKind, ModelOptions};
use crate::ops::{add_scaled, Adam, AdamConfig, BatchNormConfig};
use crate::plot::{learning_curve, EpochRecord};
use crate::posters::{check_image_file, PosterSet, Source, SyntheticConfig};
use crate::rng::Rng;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

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
struct PartialEpoch {
    epoch: usize,
    batches_done: usize,
    loss_sum: f64,
    seen: usize,
    correct: usize,
    waited: f64,
    seconds: f64,
}

/// Opens the dataset a config names.
pub fn open_dataset(config: &TrainConfig) -> Result<PosterSet> {
    match &config.data {
        Some(dir) => PosterSet::open(dir),
        None => Ok(PosterSet::synthetic(config.synthetic)),
    }
}

/// The input size a config resolves to for a dataset.
pub fn resolve_size(
    model: ModelKind,
    size: Option<usize>,
    set: &PosterSet,
    labels: usize,
) -> Result<usize> {
    let size = match (size, &set.source) {
        (Some(s), _) => s,
        (None, Source::Dir(_)) => model.default_size(),
        (None, Source::Synthetic(_)) => (48..=model.default_size())
            .find(|&s| model.describe(s, labels).is_ok())
            .unwrap_or(48),
    };
    if size == 0 {
        return Err(Error::Config {
            what: "--size".into(),
            message: "must be at least 1".into(),
        });
    }
    model.describe(size, labels)?;
    Ok(size)
}

/// Probabilities and targets of `rows` (inference mode), in `rows` order
/// minus the posters that could not be loaded (returned with their message).
pub struct Predictions {
    pub rows: Vec<usize>,
    pub probabilities: Vec<f32>,
    pub targets: Vec<f32>,
    pub failed: Vec<(usize, String)>,
}

/// Runs `model` in inference mode over `rows` of `set`.
#[allow(clippy::too_many_arguments)]
pub fn predict_rows(
    gpu: &Gpu,
    model: &Model,
    set: &Arc<PosterSet>,
    cache: &Arc<ImageCache>,
    rows: &[usize],
    batch: usize,
    workers: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Predictions> {
    let mut out = Predictions {
        rows: vec![],
        probabilities: vec![],
        targets: vec![],
        failed: vec![],
    };
    let size = model.size;
    for b in Loader::new(
        set.clone(),
        cache.clone(),
        batches(rows, batch),
        size,
        workers,
    ) {
        out.failed.extend(b.failed);
        if b.rows.is_empty() {
            continue;
        }
        let n = b.rows.len();
        let tape = Tape::new(gpu, Mode::Inference);
        let x = tape.constant(Tensor::from_slice(gpu, [n, 3, size, size], &b.x)?);
        let p = model.forward(&tape, &x, 0)?;
        out.probabilities.extend(p.value.to_vec(gpu)?);
        out.targets.extend(b.y);
        out.rows.extend(b.rows);
        on_batch(out.rows.len());
    }
    Ok(out)
}

fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    Rng::new(seed ^ 0xE90C_0000 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .shuffle(&mut order);
    order
}

fn write_history(path: &Path, history: &[EpochRecord]) -> Result<()> {
    let mut w = csv::Writer::from_writer(vec![]);
    for r in history {
        w.serialize(r).map_err(|e| Error::Io {
            path: path.display().to_string(),
            error: std::io::Error::other(e),
        })?;
    }
    let bytes = w.into_inner().map_err(|e| Error::Io {
        path: path.display().to_string(),
        error: std::io::Error::other(e.to_string()),
    })?;
    write_atomically(path, &bytes)
}

fn read_history(path: &Path) -> Result<Vec<EpochRecord>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| Error::Data {
        file: path.display().to_string(),
        line: None,
        message: e.to_string(),
    })?;
    r.deserialize()
        .map(|rec| {
            rec.map_err(|e| Error::Data {
                file: path.display().to_string(),
                line: e.position().map(|p| p.line()),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Redraws `learning_curve.png` of a run directory from its `history.csv`,
/// `metrics.json` (the baseline) and `config.json` (the title) — after
/// editing the history, or for runs drawn by an older version. The image is
/// written atomically; nothing else in the directory changes. Returns its path.
pub fn replot(run: &Path) -> Result<PathBuf> {
    if !run.join("history.csv").is_file() {
        return Err(Error::Config {
            what: run.display().to_string(),
            message: "holds no history.csv: `plot` wants a run directory written by `train` \
                      (runs/<name>)"
                .into(),
        });
    }
    let history = read_history(&run.join("history.csv"))?;
    if history.is_empty() {
        return Err(Error::Data {
            file: run.join("history.csv").display().to_string(),
            line: None,
            message: "no epoch recorded yet: nothing to plot".into(),
        });
    }
    let json = |name: &str| -> Result<serde_json::Value> {
        let path = run.join(name);
        let text = std::fs::read_to_string(&path).map_err(|error| Error::Io {
            path: path.display().to_string(),
            error,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Data {
            file: path.display().to_string(),
            line: Some(e.line() as u64),
            message: format!("not the JSON `postergrad train` writes: {e}"),
        })
    };
    let report: MetricsReport =
        serde_json::from_value(json("metrics.json")?).map_err(|e| Error::Data {
            file: run.join("metrics.json").display().to_string(),
            line: None,
            message: format!("no model/baseline metrics: {e}"),
        })?;
    let config = json("config.json")?;
    let settings = &config["settings"];
    let title = format!(
        "postergrad: {} at {}×{} on {}",
        settings["model"].as_str().unwrap_or("model"),
        settings["size"],
        settings["size"],
        settings["data"].as_str().unwrap_or("?")
    );
    write_learning_curve(run, &title, &history, &report.baseline)
}

/// Draws `out/learning_curve.png` atomically: plotters picks the encoder
/// from the extension, so it draws to a `.png` beside the target
/// (`.learning_curve.tmp.png`), which is then renamed into place.
fn write_learning_curve(
    out: &Path,
    title: &str,
    history: &[EpochRecord],
    baseline: &Metrics,
) -> Result<PathBuf> {
    let png = out.join("learning_curve.png");
    let tmp = out.join(".learning_curve.tmp.png");
    if let Err(e) = learning_curve(&tmp, title, history, baseline) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, &png).map_err(|error| Error::Write {
        path: png.display().to_string(),
        error,
    })?;
    Ok(png)
}

/// The JSON written to `metrics.json` and printed by `evaluate --json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricsReport {
    pub model: Metrics,
    pub baseline: Metrics,
    pub count: usize,
}

/// Leaves out the posters whose image cannot be used — missing, empty, not
/// a JPEG or PNG, damaged in structure, or too large to decode
/// ([`check_image_file`](crate::posters::check_image_file), which reads
/// each file once and decodes nothing) — before the split, so the split
/// holds usable posters only. Warns about each (the first ten by name);
/// with `--strict` the first is an error, and so is a dataset with no
/// usable poster at all. Returns the count left out.
fn drop_unusable_images(
    set: &mut PosterSet,
    config: &TrainConfig,
    on: &mut impl FnMut(Event),
) -> Result<usize> {
    let bad = unusable_images(set);
    let Some((first, first_message)) = bad.first() else {
        return Ok(0);
    };
    let path = |i: usize| set.image_path(i).unwrap_or_default().display().to_string();
    let named =
        |&(i, ref m): &(usize, String)| format!("poster {} ({}): {m}", set.posters[i].id, path(i));
    if config.strict {
        return Err(Error::Image {
            id: set.posters[*first].id.clone(),
            path: path(*first),
            message: format!(
                "{first_message} ({} of {} images unusable; without --strict they are skipped)",
                bad.len(),
                set.posters.len()
            ),
        });
    }
    for b in bad.iter().take(10) {
        on(Event::Warning(format!("{}; skipped", named(b))));
    }
    if bad.len() > 10 {
        on(Event::Warning(format!(
            "… and {} more unusable images, skipped",
            bad.len() - 10
        )));
    }
    if bad.len() == set.posters.len() {
        let images = config.data.clone().unwrap_or_default().join("Images");
        if bad.iter().all(|(_, m)| m == "file not found") {
            return Err(Error::Image {
                id: set.posters[*first].id.clone(),
                path: path(*first),
                message: format!(
                    "file not found, nor any of the {} images train.csv lists; they belong in {}/<Id>.jpg",
                    set.posters.len(),
                    images.display()
                ),
            });
        }
        return Err(Error::Config {
            what: format!(
                "--data {}",
                config.data.clone().unwrap_or_default().display()
            ),
            message: format!(
                "none of the {} posters train.csv lists has a usable image, so there is nothing \
                 to train on; the first: {}; replace them in {} with JPEG or PNG posters",
                set.posters.len(),
                bad.iter().take(3).map(named).collect::<Vec<_>>().join("; "),
                images.display()
            ),
        });
    }
    let gone: HashSet<usize> = bad.iter().map(|(i, _)| *i).collect();
    let kept: Vec<_> = set
        .posters
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, p)| p.clone())
        .collect();
    set.posters = kept;
    Ok(bad.len())
}

/// Every poster whose image file fails [`check_image_file`], with why, in
/// poster order; read on a few threads (the files are independent).
pub fn unusable_images(set: &PosterSet) -> Vec<(usize, String)> {
    let paths: Vec<(usize, PathBuf)> = (0..set.posters.len())
        .filter_map(|i| set.image_path(i).map(|p| (i, p)))
        .collect();
    if paths.is_empty() {
        return vec![];
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let per = paths.len().div_ceil(threads);
    let mut bad: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(i, p)| check_image_file(p).err().map(|m| (*i, m)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    bad.sort_by_key(|(i, _)| *i);
    bad
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
    let mut set = open_dataset(config)?;
    for w in &set.warnings {
        on(Event::Warning(w.clone()));
    }
    let missing_count = drop_unusable_images(&mut set, config, &mut on)?;
    let genres = set.genres.len();
    let size = resolve_size(config.model, config.size, &set, genres)?;
    check_fits(gpu, config.model, size, genres, config.batch)?;
    let (train_rows, val_rows) = set.split(config.seed, config.limit, config.val_split)?;
    if train_rows.len() < config.batch {
        return Err(Error::Config {
            what: format!("--batch {}", config.batch),
            message: format!(
                "only {} usable posters remain for training ({} listed, {} unusable, {} held out \
                 for validation), fewer than one batch; use --batch {} or less, or more posters",
                train_rows.len(),
                set.posters.len() + missing_count,
                missing_count,
                val_rows.len(),
                train_rows.len()
            ),
        });
    }
    let prior = set.label_prior(&train_rows);
    let settings = RunSettings {
        data: set.describe(),
        model: config.model.to_string(),
        recipe: config.recipe,
        size,
        batch: config.batch,
        learning_rate: config.adam.learning_rate,
        seed: config.seed,
        val_split: config.val_split,
        limit: config.limit,
        train_posters: train_rows.len(),
        val_posters: val_rows.len(),
    };

    // The run directory: never overwrite a run unless asked to continue it.
    let out = &config.out;
    let state_path = out.join("train_state.safetensors");
    let model_path = out.join("model.safetensors");
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.display().to_string(),
        error: source,
    })?;
    // Locked before anything in the directory is touched: the temporaries
    // removed next could be another live run's.
    let _lock = lock_run_dir(out)?;
    remove_stale_temporaries(out);
    if config.resume && config.force {
        return Err(Error::Config {
            what: "--resume and --force".into(),
            message: "choose one: --resume continues the run, --force starts it afresh".into(),
        });
    }
    if !config.resume && !config.force && (state_path.exists() || model_path.exists()) {
        return Err(Error::Config {
            what: format!("--out {}", out.display()),
            message: "already holds a run; pass --resume to continue it, --force to start it \
                      afresh, or choose another --out"
                .into(),
        });
    }

    let tuned = config.recipe == Recipe::Tuned;
    let options = if tuned {
        ModelOptions {
            dropout_scale: 0.5,
            batchnorm: BatchNormConfig {
                momentum: 0.9,
                ..Default::default()
            },
        }
    } else {
        ModelOptions::default()
    };
    let model = Model::with_options(gpu, config.model, size, genres, config.seed, options)?;
    if tuned {
        model.init_output_bias(gpu, &prior)?;
    }
    let params = model.params();
    let mut adam = Adam::new(gpu, &params, config.adam)?;
    let mut history: Vec<EpochRecord> = vec![];
    let mut start_epoch = 0;
    // The state on disk a failure can fall back to, in words, and the
    // running sums of an epoch that a Ctrl-C cut short.
    let mut saved: Option<String> = None;
    let mut partial: Option<PartialEpoch> = None;
    if config.resume {
        if !state_path.exists() {
            return Err(Error::Config {
                what: "--resume".into(),
                message: format!(
                    "{} does not exist: there is no completed epoch to continue from",
                    state_path.display()
                ),
            });
        }
        let state = Checkpoint::load(&state_path)?;
        let saved_settings: RunSettings = state
            .metadata
            .get("run")
            .and_then(|s| serde_json::from_str(s).ok())
            .ok_or_else(|| Error::Checkpoint {
                path: state_path.display().to_string(),
                message: "has no readable `run` settings".into(),
            })?;
        if saved_settings != settings {
            return Err(Error::Config {
                what: "--resume".into(),
                message: format!(
                    "the run in {} was started with other settings: {}; resume with the \
                     run's own settings (see its config.json), or start a new run with --out",
                    out.display(),
                    settings_diff(&saved_settings, &settings)
                ),
            });
        }
        state.restore(gpu, &model)?;
        for (p, (m, v)) in params.iter().zip(adam.moments()) {
            m.write(gpu, state.tensor(&format!("{}.adam_m", p.name), m.dims())?)?;
            v.write(gpu, state.tensor(&format!("{}.adam_v", p.name), v.dims())?)?;
        }
        adam.t = state.info.step;
        start_epoch = state.info.epoch;
        partial = state
            .metadata
            .get("partial")
            .and_then(|s| serde_json::from_str::<PartialEpoch>(s).ok())
            .filter(|p| p.epoch == start_epoch + 1);
        saved = Some(describe_state(
            &state_path,
            start_epoch,
            adam.t,
            partial.as_ref(),
        ));
        let hist_path = out.join("history.csv");
        if hist_path.exists() {
            history = read_history(&hist_path)?;
            history.retain(|r| r.epoch <= start_epoch);
        }
        on(Event::Info(if start_epoch >= config.epochs {
            format!(
                "{} has already completed {start_epoch} epochs: nothing to do (pass --epochs {} or more to continue)",
                out.display(),
                start_epoch + 1
            )
        } else if let Some(p) = &partial {
            format!(
                "resuming {} in epoch {} after batch {} (step {})",
                out.display(),
                p.epoch,
                p.batches_done,
                adam.t
            )
        } else {
            format!(
                "resuming {} after epoch {start_epoch} (step {})",
                out.display(),
                adam.t
            )
        }));
    }
    write_atomically(
        &out.join("config.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "settings": settings,
            "epochs": config.epochs,
            "genres": set.genres,
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
        }
    )));
    on(Event::Info(format!(
        "data: {}; {} train / {} validation posters (seed {}); run directory {}",
        set.describe(),
        train_rows.len(),
        val_rows.len(),
        config.seed,
        out.display()
    )));
    let set = Arc::new(set);
    let cache = Arc::new(ImageCache::new(set.posters.len(), size, config.cache_bytes));
    on(Event::Info(format!(
        "decoded-image cache: {} ({:.0} MB for every poster at {size}×{size}, budget {:.0} MB)",
        if cache.enabled() {
            "on"
        } else {
            "off, decoding every epoch"
        },
        ImageCache::bytes_needed(set.posters.len(), size) as f64 / 1e6,
        config.cache_bytes as f64 / 1e6
    )));

    let val_targets: Vec<f32> = val_rows
        .iter()
        .flat_map(|&i| set.posters[i].labels.clone())
        .collect();
    let mut baseline = Metrics::baseline(&prior, &val_targets);
    let mut reported: HashSet<usize> = HashSet::new();
    let mut reported_causes: Vec<String> = Vec::new();
    let mut last = None;
    let mut val_count = val_rows.len();
    let info = |epoch: usize, step: u64| CheckpointInfo {
        model: config.model.to_string(),
        size,
        genres: set.genres.clone(),
        label_prior: prior.clone(),
        seed: config.seed,
        epoch,
        step,
        data: set.describe(),
    };

    let stop_requested = || {
        config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    };
    // Where a requested stop left the run (None: it ran all its epochs).
    let mut stopped_at: Option<StopPoint> = None;
    'epochs: for epoch in start_epoch + 1..=config.epochs {
        let started = Instant::now();
        let order = epoch_order(&train_rows, config.seed, epoch);
        on(Event::EpochStart {
            epoch,
            epochs: config.epochs,
            samples: order.len(),
        });
        let mut all = batches(&order, config.batch);
        let total_batches = all.len();
        let mut sums = partial.take().unwrap_or(PartialEpoch {
            epoch,
            ..Default::default()
        });
        let todo = all.split_off(sums.batches_done.min(total_batches));
        if sums.seen > 0 {
            on(Event::Step {
                samples: sums.seen,
                loss: sums.loss_sum / sums.seen as f64,
            });
        }
        let mut loader = Loader::with_flips(
            set.clone(),
            cache.clone(),
            todo,
            size,
            config.workers,
            tuned.then_some(config.seed ^ (epoch as u64) << 32),
        );
        loop {
            let asked = Instant::now();
            let Some(b) = loader.next() else { break };
            sums.waited += asked.elapsed().as_secs_f64();
            for (i, message) in &b.failed {
                if config.strict {
                    return Err(Error::Config {
                        what: "--strict".into(),
                        message: message.clone(),
                    });
                }
                if reported.insert(*i) {
                    on(Event::Warning(format!("{message}; skipped")));
                    reported_causes.push(message.clone());
                }
            }
            sums.batches_done += 1;
            let n = b.rows.len();
            if n > 0 {
                let step = adam.t + 1;
                let (l, probs) =
                    train_step(gpu, &model, &mut adam, &b, size, genres).map_err(|e| {
                        stopped(
                            e,
                            format!(
                                "epoch {epoch}, step {} (batch {} of {total_batches})",
                                step, sums.batches_done
                            ),
                            &saved,
                            config,
                        )
                    })?;
                sums.loss_sum += l * n as f64;
                sums.seen += n;
                sums.correct += probs
                    .iter()
                    .zip(&b.y)
                    .filter(|(p, y)| (**p >= 0.5) == (**y > 0.5))
                    .count();
                on(Event::Step {
                    samples: sums.seen,
                    loss: sums.loss_sum / sums.seen as f64,
                });
            }
            if stop_requested() && sums.batches_done < total_batches {
                sums.seconds += started.elapsed().as_secs_f64();
                let meta = info(epoch - 1, adam.t);
                save_state(gpu, out, &model, &adam, &meta, &settings, Some(&sums))?;
                stopped_at = Some(StopPoint {
                    epoch,
                    batch: sums.batches_done,
                    batches: total_batches,
                    step: adam.t,
                });
                break 'epochs;
            }
        }
        if sums.seen == 0 {
            return Err(nothing_usable(
                format!("epoch {epoch} trained on no poster"),
                &set,
                &reported_causes,
            ));
        }
        let train_seconds = sums.seconds + started.elapsed().as_secs_f64();
        on(Event::Validating {
            samples: val_rows.len(),
        });
        let val = if val_rows.is_empty() {
            None
        } else {
            let pr = predict_rows(
                gpu,
                &model,
                &set,
                &cache,
                &val_rows,
                config.batch,
                config.workers,
                |_| {},
            )
            .map_err(|e| stopped(e, format!("epoch {epoch}, validation"), &saved, config))?;
            for (i, message) in &pr.failed {
                if reported.insert(*i) {
                    on(Event::Warning(format!("{message}; skipped")));
                    reported_causes.push(message.clone());
                }
            }
            if pr.rows.is_empty() {
                return Err(nothing_usable(
                    format!("epoch {epoch}: no validation poster could be scored"),
                    &set,
                    &reported_causes,
                ));
            }
            if !pr.failed.is_empty() {
                baseline = Metrics::baseline(&prior, &pr.targets);
            }
            val_count = pr.rows.len();
            Some(Metrics::compute(&pr.probabilities, &pr.targets, genres))
        };
        let v = val.unwrap_or_default();
        let record = EpochRecord {
            epoch,
            loss: sums.loss_sum / sums.seen.max(1) as f64,
            binary_accuracy: sums.correct as f64 / (sums.seen.max(1) * genres) as f64,
            val_loss: v.bce,
            val_binary_accuracy: v.binary_accuracy,
            val_map: v.map,
            val_micro_f1: v.micro_f1,
            val_precision_at_3: v.precision_at_3,
            seconds: sums.seconds + started.elapsed().as_secs_f64(),
            samples_per_second: sums.seen as f64 / train_seconds.max(1e-9),
            loader_wait_seconds: sums.waited,
        };
        history.push(record.clone());
        last = val;

        let report = MetricsReport {
            model: v,
            baseline,
            count: val_count,
        };
        let title = format!(
            "postergrad: {} at {size}×{size} on {}",
            config.model,
            set.describe()
        );
        save_epoch(
            gpu,
            out,
            &model,
            &adam,
            &info(epoch, adam.t),
            &settings,
            &history,
            &report,
            &title,
        )
        .map_err(|e| stopped(e, format!("epoch {epoch}, saving"), &saved, config))?;
        saved = Some(describe_state(&state_path, epoch, adam.t, None));
        on(Event::EpochEnd(&record));
        if stop_requested() && epoch < config.epochs {
            stopped_at = Some(StopPoint {
                epoch,
                batch: total_batches,
                batches: total_batches,
                step: adam.t,
            });
            break;
        }
    }
    Ok(TrainSummary {
        history,
        baseline,
        last,
        val_count,
        skipped: reported.len() + missing_count,
        out: out.clone(),
        stopped: stopped_at,
    })
}

/// The error for a run left with no poster to learn from or to score after
/// decoding: the counts and the first causes; nothing of this epoch is
/// saved.
fn nothing_usable(what: String, set: &PosterSet, causes: &[String]) -> Error {
    Error::Config {
        what: format!("--data {}", set.describe()),
        message: format!(
            "{what}: every image it reached failed to decode ({} failures so far; the first: {}); \
             nothing of this epoch was saved; replace the damaged posters",
            causes.len(),
            if causes.is_empty() {
                "none reported".to_string()
            } else {
                causes
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            }
        ),
    }
}

/// One training step on a decoded batch: forward, loss, backward, and the
/// guarded Adam update. Returns the batch's mean loss and its probabilities.
/// A NaN or ±Inf in the loss or any gradient leaves the weights untouched
/// and becomes [`Error::NonFinite`], naming the tensors and the first layer
/// whose output went non-finite.
fn train_step(
    gpu: &Gpu,
    model: &Model,
    adam: &mut Adam,
    b: &crate::loader::Batch,
    size: usize,
    genres: usize,
) -> Result<(f64, Vec<f32>)> {
    let n = b.rows.len();
    let params = model.params();
    let tape = Tape::new(gpu, Mode::Training);
    let x = tape.constant(Tensor::from_slice(gpu, [n, 3, size, size], &b.x)?);
    let y = tape.constant(Tensor::from_slice(gpu, [n, genres], &b.y)?);
    let step = adam.t as u32;
    let p = model.forward(&tape, &x, step)?;
    let loss = crate::ops::binary_cross_entropy(&tape, &p, &y)?;
    tape.backward(&loss)?;
    adam.step_guarded(gpu, &params, Some(&loss.value))?;
    let probs = p.value.to_vec(gpu)?;
    let l = loss.value.to_vec(gpu)?[0] as f64;
    let faults = adam.faults(gpu, &params)?;
    if faults.is_empty() {
        return Ok((l, probs));
    }
    adam.t -= 1;
    Err(Error::NonFinite(diagnose(
        gpu,
        model,
        &x,
        step,
        &faults,
        adam.config.learning_rate,
    )?))
}

/// Reruns the faulty step's forward pass (same weights, same dropout masks:
/// the guarded update left them as they were), counting the non-finite
/// values of every layer's output on the GPU, and says what went wrong
/// where.
fn diagnose(
    gpu: &Gpu,
    model: &Model,
    x: &crate::tape::Var,
    step: u32,
    faults: &[crate::ops::adam::Fault],
    lr: f64,
) -> Result<String> {
    let counters = crate::ops::nonfinite::Counters::new(gpu, model.layers.len())?;
    let tape = Tape::new(gpu, Mode::Training);
    let mut outputs: Vec<(String, String, usize)> = vec![];
    model.forward_layers(&tape, x, step, |layer, h| {
        outputs.push((
            layer.info.name.clone(),
            h.shape().to_string(),
            h.value.numel(),
        ));
        counters.count(gpu, &h.value, outputs.len())
    })?;
    let counts = counters.read(gpu)?;
    let listed: Vec<String> = faults
        .iter()
        .take(4)
        .map(|f| format!("{} ({} of {} values)", f.what, f.count, f.numel))
        .chain((faults.len() > 4).then(|| format!("and {} more", faults.len() - 4)))
        .collect();
    let first = match outputs.iter().zip(&counts[1..]).find(|(_, &c)| c > 0) {
        Some(((name, shape, numel), c)) => format!(
            "the first layer whose output is non-finite is `{name}` (output {shape}: {c} of \
             {numel} values NaN or ±Inf)"
        ),
        None => format!(
            "every layer's output is finite; the gradient that went non-finite first (backward \
             runs from the loss) is {}",
            faults.last().map(|f| f.what.as_str()).unwrap_or("?")
        ),
    };
    Ok(format!(
        "NaN or ±Inf in {}; {first}. The step was not applied. Lower --lr (now {lr:e}) or look \
         at the data of this batch",
        listed.join(", ")
    ))
}

/// Wraps a failure during the epochs: where it happened, and which state on
/// disk survives it.
fn stopped(cause: Error, at: String, saved: &Option<String>, config: &TrainConfig) -> Error {
    let checkpoint = match (saved, &cause) {
        (None, _) => "no checkpoint had been written yet (the run stopped before its first \
                      epoch ended); nothing is lost but this run's time"
            .to_string(),
        (Some(state), Error::NonFinite(_)) => format!(
            "the last good checkpoint, {state}, is intact and was not overwritten; the same \
             settings would diverge at the same step, so start afresh with other settings \
             (--force), or evaluate {}",
            config.out.join("model.safetensors").display()
        ),
        (Some(state), _) => format!(
            "the last checkpoint, {state}, is intact; once the cause is fixed, continue with \
             `postergrad train --resume --out {}` and the same settings",
            config.out.display()
        ),
    };
    Error::Stopped {
        at,
        cause: Box::new(cause),
        checkpoint,
    }
}

/// "runs/x/train_state.safetensors (after epoch 2, step 350)".
fn describe_state(path: &Path, epoch: usize, step: u64, partial: Option<&PartialEpoch>) -> String {
    match partial {
        Some(p) => format!(
            "{} (epoch {}, after batch {}, step {step})",
            path.display(),
            p.epoch,
            p.batches_done
        ),
        None => format!("{} (after epoch {epoch}, step {step})", path.display()),
    }
}

/// Refuses, before anything is allocated, a model and batch whose largest
/// tensor would not fit one buffer of this adapter, naming the tensor and
/// the largest `--batch` that fits.
fn check_fits(gpu: &Gpu, kind: ModelKind, size: usize, genres: usize, batch: usize) -> Result<()> {
    let limit = gpu.limits().max_buffer_size;
    let mb = |b: u64| b as f64 / 1e6;
    let layers = kind.describe(size, genres)?;
    // Parameters (4 bytes each, the kernel dominating its layer's count).
    if let Some(l) = layers.iter().find(|l| 4 * l.trainable as u64 > limit) {
        return Err(Error::Config {
            what: format!("--size {size}"),
            message: format!(
                "layer `{}` of model {kind} has {} parameters ({:.0} MB), more than the {:.0} MB \
                 the adapter allows per buffer; use a smaller --size",
                l.name.clone(),
                l.trainable,
                mb(4 * l.trainable as u64),
                mb(limit)
            ),
        });
    }
    // Activations: the input images and every layer's output, per sample.
    let (name, shape, per_sample) = layers
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                l.output.clone(),
                l.output.iter().product::<usize>(),
            )
        })
        .chain([("input".to_string(), vec![3, size, size], 3 * size * size)])
        .max_by_key(|(_, _, n)| *n)
        .unwrap_or_default();
    let per_sample = 4 * per_sample as u64;
    let fits = limit / per_sample.max(1);
    if batch as u64 > fits {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        return Err(Error::Config {
            what: format!("--batch {batch}"),
            message: format!(
                "at --size {size} the output of `{name}` ([{batch}, {}]) needs {:.0} MB, more \
                 than the {:.0} MB the adapter allows per buffer; {}",
                dims.join(", "),
                mb(per_sample * batch as u64),
                mb(limit),
                if fits == 0 {
                    "use a smaller --size".to_string()
                } else {
                    format!("use --batch {fits} or less, or a smaller --size")
                }
            ),
        });
    }
    Ok(())
}

/// Deletes the `.<name>.tmp-<pid>` files a killed run can leave behind (each
/// file is written to such a temporary and renamed into place; the file
/// itself is always whole).
/// `<out>/.lock`, locked for a run's life (the lock goes with the process,
/// even when it is killed): a second run on the same directory is refused
/// instead of interleaving its files with the first one's.
struct RunLock {
    _file: std::fs::File,
}

fn lock_run_dir(out: &Path) -> Result<RunLock> {
    use std::io::Write;
    let path = out.join(".lock");
    let io = |error| Error::Io {
        path: path.display().to_string(),
        error,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's pid, for the message a second run prints.
            file.set_len(0).map_err(io)?;
            write!(file, "{}", std::process::id()).map_err(io)?;
            Ok(RunLock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            Err(Error::Config {
                what: format!("--out {}", out.display()),
                message: format!(
                    "another postergrad run{} is using this run directory; wait for it to \
                     finish or stop it (Ctrl-C saves its state), or choose another --out",
                    if holder.is_empty() {
                        String::new()
                    } else {
                        format!(" (pid {holder})")
                    }
                ),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

fn remove_stale_temporaries(out: &Path) {
    let Ok(entries) = std::fs::read_dir(out) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.contains(".tmp-") || name.ends_with(".tmp.png")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// "size: saved 128, now 64; seed: saved 0, now 1": the settings that differ.
fn settings_diff(saved: &RunSettings, now: &RunSettings) -> String {
    let (a, b) = (serde_json::json!(saved), serde_json::json!(now));
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return String::new();
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "{k}: saved {v}, now {}",
                b.get(k).cloned().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Brings the run directory up to date after an epoch, each file atomically.
/// `train_state.safetensors` goes last: if the process dies before it, a
/// resume redoes the epoch (and drops any history row beyond the state's).
#[allow(clippy::too_many_arguments)]
fn save_epoch(
    gpu: &Gpu,
    out: &Path,
    model: &Model,
    adam: &Adam,
    meta: &CheckpointInfo,
    settings: &RunSettings,
    history: &[EpochRecord],
    report: &MetricsReport,
    title: &str,
) -> Result<()> {
    write_history(&out.join("history.csv"), history)?;
    write_atomically(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(report)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    write_learning_curve(out, title, history, &report.baseline)?;
    checkpoint::save_model(gpu, &out.join("model.safetensors"), model, meta)?;
    save_state(gpu, out, model, adam, meta, settings, None)
}

/// Writes `train_state.safetensors`: the model, Adam's moments, the run's
/// settings and, for an epoch stopped part-way, its running sums.
fn save_state(
    gpu: &Gpu,
    out: &Path,
    model: &Model,
    adam: &Adam,
    meta: &CheckpointInfo,
    settings: &RunSettings,
    partial: Option<&PartialEpoch>,
) -> Result<()> {
    let mut state: Vec<(String, &Tensor)> = model.named_tensors();
    let params = model.params();
    let names: Vec<(String, String)> = params
        .iter()
        .map(|p| (format!("{}.adam_m", p.name), format!("{}.adam_v", p.name)))
        .collect();
    for ((m_name, v_name), (m, v)) in names.iter().zip(adam.moments()) {
        state.push((m_name.clone(), m));
        state.push((v_name.clone(), v));
    }
    let mut extra = vec![("run", serde_json::to_string(settings).unwrap_or_default())];
    if let Some(p) = partial {
        extra.push(("partial", serde_json::to_string(p).unwrap_or_default()));
    }
    checkpoint::save(
        gpu,
        &out.join("train_state.safetensors"),
        &state,
        meta,
        &extra,
    )
}

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
