//! The epochs of a run: each one's steps, then validation, then the run
//! directory brought up to date. [`Run`] holds what they share.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::data::{epoch_order, Prepared};
use super::features::FeatureTable;
use super::run_dir::{describe_state, save_epoch, save_state, Resumed};
use super::{Event, MetricsReport, PartialEpoch, Recipe, StopPoint, TrainConfig, TrainSummary};
use crate::checkpoint::CheckpointInfo;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::loader::{batches, Batch, ImageCache, Loader};
use crate::metrics::Metrics;
use crate::nn::Model;
use crate::ops::Adam;
use crate::plot::EpochRecord;
use crate::posters::PosterSet;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

/// A run between its set-up and its summary.
pub(super) struct Run<'g, F: FnMut(Event)> {
    gpu: &'g Gpu,
    config: &'g TrainConfig,
    on: F,
    set: Arc<PosterSet>,
    cache: Arc<ImageCache>,
    data: Prepared,
    model: Model,
    adam: Adam,
    history: Vec<EpochRecord>,
    /// The state on disk a failure can fall back to, in words.
    saved: Option<String>,
    /// The running sums of an epoch a Ctrl-C cut short (resumed from).
    partial: Option<PartialEpoch>,
    /// The label-prior baseline over the posters validation scored.
    baseline: Metrics,
    /// Posters whose image failed while decoding, reported once each, and why.
    reported: HashSet<usize>,
    causes: Vec<String>,
    last: Option<Metrics>,
    val_count: usize,
    /// Cached backbone features (a frozen backbone): batches come from here
    /// instead of the image loader, and only the head runs.
    features: Option<Arc<FeatureTable>>,
}

/// How an epoch's training part ended.
enum Trained {
    /// Every batch ran: the sums, and the batches.
    Done(PartialEpoch, usize),
    /// A requested stop cut it short; its state is saved.
    Stopped(StopPoint),
}

impl<'g, F: FnMut(Event)> Run<'g, F> {
    #[allow(clippy::too_many_arguments)] // the parts `train` set up, handed over once
    pub fn new(
        gpu: &'g Gpu,
        config: &'g TrainConfig,
        on: F,
        data: Prepared,
        cache: Arc<ImageCache>,
        model: Model,
        adam: Adam,
        resumed: Resumed,
    ) -> Self {
        let val_targets: Vec<f32> = data
            .val_rows
            .iter()
            .flat_map(|&i| data.set.posters[i].labels.clone())
            .collect();
        let baseline = Metrics::baseline(&data.prior, &val_targets);
        let set = data.set.clone();
        Run {
            gpu,
            config,
            on,
            set,
            cache,
            val_count: data.val_rows.len(),
            data,
            model,
            adam,
            history: resumed.history,
            saved: resumed.saved,
            partial: resumed.partial,
            baseline,
            reported: HashSet::new(),
            causes: Vec::new(),
            last: None,
            features: None,
        }
    }

    /// Trains the head on cached features instead of images.
    pub fn use_features(&mut self, features: Option<Arc<FeatureTable>>) {
        if let Some(t) = &features {
            let failed = t.failed.clone();
            self.remember_failures(&failed);
        }
        self.features = features;
    }

    /// The shape of a batch of `n` inputs: images, or cached features.
    fn input_shape(&self, n: usize) -> Vec<usize> {
        match &self.features {
            Some(t) => vec![n, t.dim],
            None => vec![n, 3, self.data.size, self.data.size],
        }
    }

    /// Runs `epochs`; returns where a requested stop left the run (None: it
    /// ran them all).
    pub fn epochs(&mut self, epochs: RangeInclusive<usize>) -> Result<Option<StopPoint>> {
        for epoch in epochs {
            let started = Instant::now();
            let (sums, batches) = match self.train_epoch(epoch, started)? {
                Trained::Done(sums, batches) => (sums, batches),
                Trained::Stopped(at) => return Ok(Some(at)),
            };
            if sums.seen == 0 {
                return Err(nothing_usable(
                    format!("epoch {epoch} trained on no poster"),
                    &self.set,
                    &self.causes,
                ));
            }
            let train_seconds = sums.seconds + started.elapsed().as_secs_f64();
            let val = self.validate(epoch)?;
            self.finish_epoch(epoch, &sums, started, train_seconds, val)?;
            if self.stop_requested() && epoch < self.config.epochs {
                return Ok(Some(StopPoint {
                    epoch,
                    batch: batches,
                    batches,
                    step: self.adam.t,
                }));
            }
        }
        Ok(None)
    }

    pub fn summary(self, stopped: Option<StopPoint>) -> TrainSummary {
        TrainSummary {
            history: self.history,
            baseline: self.baseline,
            last: self.last,
            val_count: self.val_count,
            skipped: self.reported.len() + self.data.unusable,
            out: self.config.out.clone(),
            stopped,
        }
    }

    fn stop_requested(&self) -> bool {
        self.config
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    /// The checkpoint metadata after `epoch` epochs and `step` steps.
    fn info(&self, epoch: usize, step: u64) -> CheckpointInfo {
        CheckpointInfo {
            model: self.config.model.to_string(),
            size: self.data.size,
            genres: self.set.genres.clone(),
            label_prior: self.data.prior.clone(),
            seed: self.config.seed,
            epoch,
            step,
            data: self.set.describe(),
        }
    }

    /// Reports the posters of a batch that failed to load (once each);
    /// with `--strict` the first is an error.
    fn report_failures(&mut self, failed: &[(usize, String)]) -> Result<()> {
        if let (true, Some((_, message))) = (self.config.strict, failed.first()) {
            return Err(Error::Config {
                what: "--strict".into(),
                message: message.clone(),
            });
        }
        self.remember_failures(failed);
        Ok(())
    }

    /// Warns about each poster that failed to load, once, and keeps why.
    fn remember_failures(&mut self, failed: &[(usize, String)]) {
        for (i, message) in failed {
            if self.reported.insert(*i) {
                (self.on)(Event::Warning(format!("{message}; skipped")));
                self.causes.push(message.clone());
            }
        }
    }

    /// The steps of one epoch, from the batch a resumed run stopped at.
    fn train_epoch(&mut self, epoch: usize, started: Instant) -> Result<Trained> {
        let config = self.config;
        let order = epoch_order(&self.data.train_rows, config.seed, epoch);
        (self.on)(Event::EpochStart {
            epoch,
            epochs: config.epochs,
            samples: order.len(),
        });
        let mut all = batches(&order, config.batch);
        let total = all.len();
        let mut sums = self.partial.take().unwrap_or(PartialEpoch {
            epoch,
            ..Default::default()
        });
        let todo = all.split_off(sums.batches_done.min(total));
        if sums.seen > 0 {
            (self.on)(Event::Step {
                samples: sums.seen,
                loss: sums.loss_sum / sums.seen as f64,
            });
        }
        let flips = (config.recipe == Recipe::Tuned).then_some(config.seed ^ (epoch as u64) << 32);
        let mut loader: Box<dyn Iterator<Item = Batch>> = match &self.features {
            Some(t) => {
                let (t, set) = (t.clone(), self.set.clone());
                let first = sums.batches_done;
                Box::new(
                    todo.into_iter()
                        .enumerate()
                        .map(move |(k, rows)| t.batch(&set, first + k, &rows)),
                )
            }
            None => Box::new(Loader::with_flips(
                self.set.clone(),
                self.cache.clone(),
                todo,
                self.data.size,
                config.workers,
                flips,
            )),
        };
        loop {
            let asked = Instant::now();
            let Some(b) = loader.next() else { break };
            sums.waited += asked.elapsed().as_secs_f64();
            self.report_failures(&b.failed)?;
            sums.batches_done += 1;
            if !b.rows.is_empty() {
                self.step(epoch, &b, &mut sums, total)?;
            }
            if self.stop_requested() && sums.batches_done < total {
                sums.seconds += started.elapsed().as_secs_f64();
                let meta = self.info(epoch - 1, self.adam.t);
                let (gpu, out) = (self.gpu, &config.out);
                save_state(
                    gpu,
                    out,
                    &self.model,
                    &self.adam,
                    &meta,
                    &self.data.settings,
                    Some(&sums),
                )?;
                return Ok(Trained::Stopped(StopPoint {
                    epoch,
                    batch: sums.batches_done,
                    batches: total,
                    step: self.adam.t,
                }));
            }
        }
        Ok(Trained::Done(sums, total))
    }

    /// One step on a batch, added to the epoch's sums.
    fn step(
        &mut self,
        epoch: usize,
        b: &Batch,
        sums: &mut PartialEpoch,
        total: usize,
    ) -> Result<()> {
        let n = b.rows.len();
        let step = self.adam.t + 1;
        let (shape, genres) = (self.input_shape(n), self.data.genres());
        let (l, probs) = train_step(self.gpu, &self.model, &mut self.adam, b, shape, genres)
            .map_err(|e| {
                let at = format!(
                    "epoch {epoch}, step {step} (batch {} of {total})",
                    sums.batches_done
                );
                stopped(e, at, &self.saved, self.config)
            })?;
        sums.loss_sum += l * n as f64;
        sums.seen += n;
        sums.correct += probs
            .iter()
            .zip(&b.y)
            .filter(|(p, y)| (**p >= 0.5) == (**y > 0.5))
            .count();
        (self.on)(Event::Step {
            samples: sums.seen,
            loss: sums.loss_sum / sums.seen as f64,
        });
        Ok(())
    }

    /// Scores the validation posters in inference mode.
    fn validate(&mut self, epoch: usize) -> Result<Option<Metrics>> {
        (self.on)(Event::Validating {
            samples: self.data.val_rows.len(),
        });
        if self.data.val_rows.is_empty() {
            return Ok(None);
        }
        let pr = match &self.features {
            Some(t) => predict_features(self.gpu, &self.model, &self.set, t, &self.data.val_rows),
            None => predict_rows(
                self.gpu,
                &self.model,
                &self.set,
                &self.cache,
                &self.data.val_rows,
                self.config.batch,
                self.config.workers,
                |_| {},
            ),
        }
        .map_err(|e| {
            stopped(
                e,
                format!("epoch {epoch}, validation"),
                &self.saved,
                self.config,
            )
        })?;
        self.remember_failures(&pr.failed);
        if pr.rows.is_empty() {
            return Err(nothing_usable(
                format!("epoch {epoch}: no validation poster could be scored"),
                &self.set,
                &self.causes,
            ));
        }
        if !pr.failed.is_empty() {
            self.baseline = Metrics::baseline(&self.data.prior, &pr.targets);
        }
        self.val_count = pr.rows.len();
        Ok(Some(Metrics::compute(
            &pr.probabilities,
            &pr.targets,
            self.data.genres(),
        )))
    }

    /// Records the epoch and writes the run directory.
    fn finish_epoch(
        &mut self,
        epoch: usize,
        sums: &PartialEpoch,
        started: Instant,
        train_seconds: f64,
        val: Option<Metrics>,
    ) -> Result<()> {
        let genres = self.data.genres();
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
            val_recall_at_3: v.recall_at_3,
            seconds: sums.seconds + started.elapsed().as_secs_f64(),
            samples_per_second: sums.seen as f64 / train_seconds.max(1e-9),
            loader_wait_seconds: sums.waited,
        };
        self.history.push(record.clone());
        self.last = val;
        let report = MetricsReport {
            model: v,
            baseline: self.baseline,
            count: self.val_count,
        };
        let title = format!(
            "postergrad: {} at {size}×{size} on {}",
            self.config.model,
            self.set.describe(),
            size = self.data.size
        );
        let meta = self.info(epoch, self.adam.t);
        save_epoch(
            self.gpu,
            &self.config.out,
            &self.model,
            &self.adam,
            &meta,
            &self.data.settings,
            &self.history,
            &report,
            &title,
        )
        .map_err(|e| {
            stopped(
                e,
                format!("epoch {epoch}, saving"),
                &self.saved,
                self.config,
            )
        })?;
        let state_path = self.config.out.join("train_state.safetensors");
        self.saved = Some(describe_state(&state_path, epoch, self.adam.t, None));
        (self.on)(Event::EpochEnd(&record));
        Ok(())
    }
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
#[allow(clippy::too_many_arguments)] // the model, its posters and the loader's two settings: evaluate's and validation's shared call
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

/// The head's predictions for `rows` from cached features (posters without
/// features are left out: they failed while extracting).
fn predict_features(
    gpu: &Gpu,
    model: &Model,
    set: &PosterSet,
    t: &FeatureTable,
    rows: &[usize],
) -> Result<Predictions> {
    let mut out = Predictions {
        rows: vec![],
        probabilities: vec![],
        targets: vec![],
        failed: vec![],
    };
    for (k, chunk) in batches(rows, 256).into_iter().enumerate() {
        let b = t.batch(set, k, &chunk);
        if b.rows.is_empty() {
            continue;
        }
        let tape = Tape::new(gpu, Mode::Inference);
        let x = tape.constant(Tensor::from_slice(gpu, [b.rows.len(), t.dim], &b.x)?);
        let p = model.forward(&tape, &x, 0)?;
        out.probabilities.extend(p.value.to_vec(gpu)?);
        out.targets.extend(b.y);
        out.rows.extend(b.rows);
    }
    Ok(out)
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
    shape: Vec<usize>,
    genres: usize,
) -> Result<(f64, Vec<f32>)> {
    let n = b.rows.len();
    let params = model.params();
    let tape = Tape::new(gpu, Mode::Training);
    let x = tape.constant(Tensor::from_slice(gpu, shape, &b.x)?);
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
