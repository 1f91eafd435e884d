//! `postergrad train`: a run directory from a dataset, with progress, a
//! summary beside the label-prior baseline, and Ctrl-C that saves.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use postergrad::loader::Loader;
use postergrad::nn::ModelKind;
use postergrad::train::{self, Event};

use crate::evaluate::print_metric_rows;
use crate::{at_least_one, learning_rate, open_gpu, share};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Dataset directory in the tutorial's layout (train.csv + Images/<Id>.jpg). Default: the embedded synthetic posters.
    #[arg(long)]
    data: Option<PathBuf>,
    /// poster (the tutorial's CNN), poster5 (its 5×5 variant), mlp, or torchvision's resnet18, resnet34, resnet50.
    #[arg(long, default_value = "poster")]
    model: String,
    /// Pretrained weights for a ResNet: a torchvision state_dict as safetensors or .pth (docs/training.md says which file). Its fc head is kept when it has the genres' shape, replaced otherwise.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// none (every parameter trains) or backbone (only the head trains, batch norms frozen, features computed once and cached in the run directory).
    #[arg(long, default_value = "none")]
    freeze: String,
    /// tutorial (Keras's settings exactly) or tuned (prior-initialised output bias, batch-norm momentum 0.9, dropout halved, random flips).
    #[arg(long, default_value = "tutorial")]
    recipe: String,
    /// Input size in pixels (square). Default: 350 (poster5: 400) on real posters, 48 on the synthetic ones.
    #[arg(long, value_parser = at_least_one)]
    size: Option<usize>,
    /// Passes over the training set.
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    epochs: usize,
    /// Posters per step.
    #[arg(long, default_value_t = 32, value_parser = at_least_one)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true, value_parser = learning_rate)]
    lr: f64,
    /// Seed for the split, the shuffles, the initialisation and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of the posters held out for validation.
    #[arg(long, default_value_t = 0.15, allow_negative_numbers = true, value_parser = share)]
    val_split: f64,
    /// Use only the first N posters of the shuffled set.
    #[arg(long, value_parser = at_least_one)]
    limit: Option<usize>,
    /// Run directory. Default: runs/<model>-<data>, or the next free runs/<model>-<data>-N.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out (default: the latest default run) from its last completed epoch.
    #[arg(long)]
    resume: bool,
    /// Start afresh in an --out that already holds a run (replacing its files).
    #[arg(long)]
    force: bool,
    /// Fail on the first missing or unreadable image instead of skipping it.
    #[arg(long)]
    strict: bool,
    /// Keep decoded images in memory (u8) when all of them fit in this many MB.
    #[arg(long, default_value_t = 1024)]
    cache_mb: u64,
    /// Image-decoding threads (default: up to 4).
    #[arg(long, value_parser = at_least_one)]
    workers: Option<usize>,
}

/// runs/<model>-<data>, or the next free -N; with `resume`, the latest existing one.
fn default_run_dir(model: &str, data: &Option<PathBuf>, resume: bool) -> PathBuf {
    let data_name = match data {
        Some(d) => d
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "data".into()),
        None => "synthetic".into(),
    };
    let base = format!("runs/{model}-{data_name}");
    let candidate = |n: usize| {
        PathBuf::from(if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        })
    };
    let holds_run = |p: &PathBuf| {
        p.join("train_state.safetensors").exists() || p.join("model.safetensors").exists()
    };
    let mut n = 1;
    while holds_run(&candidate(n)) {
        n += 1;
    }
    if resume && n > 1 {
        n -= 1;
    }
    candidate(n)
}

pub fn cmd_train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    let model: ModelKind = a.model.parse()?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&a.model, &a.data, a.resume));
    let config = train::TrainConfig {
        data: a.data,
        model,
        weights: a.weights,
        freeze: a.freeze.parse()?,
        recipe: a.recipe.parse()?,
        size: a.size,
        epochs: a.epochs,
        batch: a.batch,
        adam: postergrad::ops::AdamConfig {
            learning_rate: a.lr,
            ..Default::default()
        },
        seed: a.seed,
        val_split: a.val_split,
        limit: a.limit,
        out,
        resume: a.resume,
        force: a.force,
        strict: a.strict,
        cache_bytes: a.cache_mb << 20,
        workers: a.workers.unwrap_or_else(Loader::default_workers),
        ..Default::default()
    };
    // Ctrl-C: the first stops after the current step with a checkpoint, a
    // second one quits at once (every file on disk is written atomically,
    // so even that loses nothing already saved).
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: quitting now; the last checkpoint on disk is intact");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")?;
    let config = train::TrainConfig {
        stop: Some(stop),
        ..config
    };
    let gpu = open_gpu()?;
    let started = Instant::now();
    let mut progress = Progress::new(config.epochs);
    let summary = train::train(&gpu, &config, |event| progress.show(event))?;
    progress.bar.finish_and_clear();
    if let Some(at) = summary.stopped {
        println!(
            "stopped by Ctrl-C after step {} (epoch {}, batch {} of {}); the state is saved in {}",
            at.step,
            at.epoch,
            at.batch,
            at.batches,
            summary.out.join("train_state.safetensors").display()
        );
        println!(
            "continue exactly where it stopped with:\n  {}",
            resume_command(&summary.out)
        );
        return Ok(ExitCode::from(130));
    }
    if let Some(m) = summary.last {
        println!(
            "\nvalidation ({} posters)     model   label-prior baseline",
            summary.val_count
        );
        print_metric_rows(&m, &summary.baseline);
    }
    if summary.skipped > 0 {
        println!(
            "skipped {} posters with missing or unreadable images (listed above)",
            summary.skipped
        );
    }
    println!(
        "done in {:.0} s; run directory {}: model.safetensors, train_state.safetensors, history.csv, learning_curve.png, metrics.json",
        started.elapsed().as_secs_f64(),
        summary.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// This process's `postergrad train …` command line, made to resume `out`:
/// `--force` dropped, `--resume` and `--out` added where missing.
fn resume_command(out: &Path) -> String {
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--force" && a != "--resume")
        .collect();
    if !args.iter().any(|a| a == "--out" || a.starts_with("--out=")) {
        args.extend(["--out".into(), out.display().to_string()]);
    }
    args.push("--resume".into());
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect();
    format!("postergrad {}", quoted.join(" "))
}

/// The progress bar of a run (a plain line every 30 s where stderr is not a
/// terminal: CI logs, nohup) and its Keras-like line per epoch.
struct Progress {
    bar: ProgressBar,
    epochs: usize,
    plain: bool,
    epoch_started: Instant,
    last_line: Instant,
    epoch_total: usize,
}

impl Progress {
    fn new(epochs: usize) -> Progress {
        Progress {
            bar: ProgressBar::hidden(),
            epochs,
            plain: !std::io::stderr().is_terminal(),
            epoch_started: Instant::now(),
            last_line: Instant::now(),
            epoch_total: 0,
        }
    }

    fn show(&mut self, event: Event) {
        match event {
            Event::Info(line) => self.bar.suspend(|| println!("{line}")),
            Event::Warning(line) => self.bar.suspend(|| eprintln!("warning: {line}")),
            Event::EpochStart {
                epoch,
                epochs,
                samples,
            } => {
                self.bar.set_draw_target(ProgressDrawTarget::stderr());
                self.bar.reset();
                self.bar.set_length(samples as u64);
                self.bar.set_position(0);
                self.bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:28}] {pos}/{len} posters · {per_sec} · loss {msg} · ETA {eta}",
                    )
                    .expect("template")
                    .progress_chars("=> "),
                );
                self.bar.set_prefix(format!("epoch {epoch}/{epochs}"));
                self.epoch_started = Instant::now();
                self.last_line = Instant::now();
                self.epoch_total = samples;
                self.bar.set_message("…");
            }
            Event::Step { samples, loss } => {
                self.bar.set_position(samples as u64);
                self.bar.set_message(format!("{loss:.4}"));
                if self.plain && self.last_line.elapsed().as_secs() >= 30 {
                    self.last_line = Instant::now();
                    let rate =
                        samples as f64 / self.epoch_started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!(
                        "  {samples}/{} posters, {rate:.1} posters/s, loss {loss:.4}, ETA {:.0} s",
                        self.epoch_total,
                        (self.epoch_total - samples) as f64 / rate.max(1e-9)
                    );
                }
            }
            Event::Extracting { done, total } => {
                if done == 0 {
                    self.bar.set_draw_target(ProgressDrawTarget::stderr());
                    self.bar.reset();
                    self.bar.set_length(total as u64);
                    self.bar.set_style(
                        ProgressStyle::with_template(
                            "features [{bar:28}] {pos}/{len} posters · {per_sec} · ETA {eta}",
                        )
                        .expect("template")
                        .progress_chars("=> "),
                    );
                    self.epoch_started = Instant::now();
                    self.last_line = Instant::now();
                }
                self.bar.set_position(done as u64);
                if done >= total {
                    self.bar.finish_and_clear();
                } else if self.plain && self.last_line.elapsed().as_secs() >= 30 {
                    self.last_line = Instant::now();
                    let rate = done as f64 / self.epoch_started.elapsed().as_secs_f64().max(1e-9);
                    eprintln!(
                        "  features: {done}/{total} posters, {rate:.1} posters/s, ETA {:.0} s",
                        (total - done) as f64 / rate.max(1e-9)
                    );
                }
            }
            Event::Validating { samples } => {
                self.bar
                    .set_message(format!("validating {samples} posters"));
            }
            Event::EpochEnd(r) => {
                self.bar.finish_and_clear();
                println!(
                    "epoch {:>2}/{} - {:.0}s {:.0} ms/poster - loss: {:.4} - binary_accuracy: {:.4} - val_loss: {:.4} - val_binary_accuracy: {:.4} - val_map: {:.4} - val_precision@3: {:.4} - val_recall@3: {:.4}",
                    r.epoch,
                    self.epochs,
                    r.seconds,
                    1e3 / r.samples_per_second.max(1e-9),
                    r.loss,
                    r.binary_accuracy,
                    r.val_loss,
                    r.val_binary_accuracy,
                    r.val_map,
                    r.val_precision_at_3,
                    r.val_recall_at_3
                );
                if r.loader_wait_seconds > 0.05 * r.seconds {
                    println!(
                        "  (the GPU waited {:.1} s for image decoding this epoch; more --workers or a smaller --size would help)",
                        r.loader_wait_seconds
                    );
                }
            }
        }
    }
}
