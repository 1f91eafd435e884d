//! The `postergrad` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use postergrad::checkpoint::Checkpoint;
use postergrad::loader::{ImageCache, Loader};
use postergrad::metrics::Metrics;
use postergrad::nn::{self, ModelKind};
use postergrad::posters::{PosterSet, SyntheticConfig};
use postergrad::train::{self, Event, MetricsReport};
use postergrad::{gradcheck, Gpu, Mode, Precision, Tape, Tensor};

#[derive(Parser)]
#[command(
    name = "postergrad",
    version,
    about = "A from-scratch GPU compute engine (WGSL through wgpu) that trains a movie-poster genre CNN"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Output pixels per chunk of conv2d's weight-gradient reduction
    /// (64 ..= 65536; default: the adapter's measured best). For tuning
    /// runs; `info` and `profile` show the value in force.
    #[arg(long, global = true, value_name = "PIXELS", value_parser = parse_weight_chunk)]
    weight_chunk: Option<usize>,
}

/// `--weight-chunk`, or `POSTERGRAD_WEIGHT_CHUNK` where the flag is absent
/// (read here, at the edge, so that every device this process opens gets it).
fn parse_weight_chunk(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(c) if postergrad::gpu::WEIGHT_CHUNK_RANGE.contains(&c) => Ok(c),
        _ => Err(format!(
            "'{v}' is not a pixel count in 64 ..= 65536 (--weight-chunk or \
             POSTERGRAD_WEIGHT_CHUNK); leave it unset for the adapter's default"
        )),
    }
}

/// The speed settings every device of this process gets (`--weight-chunk`).
static TUNING: std::sync::OnceLock<postergrad::gpu::Tuning> = std::sync::OnceLock::new();

/// Opens the best adapter in `precision` with the process's [`TUNING`].
fn device(precision: Precision) -> postergrad::Result<Gpu> {
    let gpu = Gpu::with_precision(precision)?;
    gpu.set_tuning(TUNING.get().copied().unwrap_or_default())?;
    Ok(gpu)
}

#[derive(Subcommand)]
enum Command {
    /// Show the GPU adapter postergrad picks, its limits and features.
    Info,
    /// Check every backward kernel against finite differences and an f64 CPU reference.
    Gradcheck {
        /// Only these ops (comma-separated).
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(postergrad::ops::registry::gradcheck_ops()))]
        op: Option<Vec<String>>,
        /// Print the cases (op and shape) that would be checked, without running them.
        #[arg(long)]
        list: bool,
        /// Seed for the random inputs, upstream gradients and directions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Load shaders/*.wgsl overrides from this directory (to study a modified kernel).
        #[arg(long)]
        shader_dir: Option<PathBuf>,
        /// After the table, list every check's first elements (index, tested, trusted,
        /// difference); failed checks are always listed.
        #[arg(long)]
        verbose: bool,
        /// Element type of the kernels: f32 (the training kernels, step and tolerances per
        /// op) or f64 (every kernel instantiated in f64, checked with PyTorch gradcheck's
        /// settings: eps 1e-6, atol 1e-5, rtol 1e-3). Needs the adapter's SHADER_F64;
        /// without it the f32 suite runs and says so.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f64"])]
        dtype: String,
    },
    /// Train a model on posters (default: the embedded synthetic posters) and write a run directory.
    Train(TrainArgs),
    /// Evaluate a checkpoint on every labelled poster of a dataset, beside the label-prior baseline.
    Evaluate {
        /// A model.safetensors written by `train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Dataset directory (train.csv + Images/); default: 1,000 fresh embedded synthetic posters.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Only the first N posters of the file.
        #[arg(long, value_parser = at_least_one)]
        limit: Option<usize>,
        /// Posters per forward pass.
        #[arg(long, default_value_t = 32, value_parser = at_least_one)]
        batch: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// The most likely genres of each poster image.
    Predict {
        /// A model.safetensors written by `train`.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Poster images (JPEG or PNG).
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// How many genres to show per poster.
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        top: usize,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Time every kernel of a training step on random data (GPU timestamp
    /// queries where the adapter has them) and compare with the adapter's peak.
    Profile {
        /// poster, poster5 or mlp.
        #[arg(long, default_value = "poster")]
        model: String,
        /// Input size (square); default: the model's tutorial size.
        #[arg(long, value_parser = at_least_one)]
        size: Option<usize>,
        /// Posters per step.
        #[arg(long, default_value_t = 32, value_parser = at_least_one)]
        batch: usize,
        /// Timed steps (after one untimed warm-up step).
        #[arg(long, default_value_t = 3, value_parser = at_least_one)]
        steps: usize,
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Print a model's layers, output shapes and parameter counts (no GPU needed).
    Summary {
        /// poster, poster5 or mlp.
        #[arg(long, default_value = "poster")]
        model: String,
        /// Input size (square); default: the model's tutorial size (350, or 400 for poster5).
        #[arg(long, value_parser = at_least_one)]
        size: Option<usize>,
        /// Number of outputs (genres).
        #[arg(long, default_value_t = 25, value_parser = at_least_one)]
        labels: usize,
    },
    /// Redraw a run directory's learning_curve.png from its history.csv and metrics.json (no GPU needed).
    Plot {
        /// The run directory written by `train` (e.g. runs/NAME).
        run: PathBuf,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Dataset directory in the tutorial's layout (train.csv + Images/<Id>.jpg). Default: the embedded synthetic posters.
    #[arg(long)]
    data: Option<PathBuf>,
    /// poster (the tutorial's CNN), poster5 (its 5×5 variant) or mlp.
    #[arg(long, default_value = "poster")]
    model: String,
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

// Option values checked as clap parses them, so that the error names the
// option and the value as typed: "invalid value '0' for '--batch <BATCH>':
// must be at least 1".

fn at_least_one(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be at least 1".into()),
        Err(_) => Err("must be a whole number of at least 1".into()),
    }
}

fn learning_rate(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err("must be a positive number (Adam's step size; the tutorial's is 1e-3)".into()),
    }
}

fn share(v: &str) -> Result<f64, String> {
    match v.trim().parse::<f64>() {
        Ok(x) if x > 0.0 && x < 1.0 => Ok(x),
        _ => Err("must be between 0 and 1, exclusive (the share of posters held out)".into()),
    }
}

/// Mesa's CPU drivers print "XDG_RUNTIME_DIR is invalid or not set" several
/// times when the variable is unset; harmless, but alarming. Point it at a
/// private directory before any thread starts.
fn quiet_mesa() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("postergrad-runtime-{}", std::process::id()));
    if std::fs::create_dir_all(&dir).is_ok() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

fn open_gpu() -> anyhow::Result<Gpu> {
    let gpu = device(Precision::F32)?;
    eprintln!("adapter: {}", gpu.adapter());
    Ok(gpu)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Info => {
            let gpu = device(Precision::F32)?;
            let a = gpu.adapter();
            println!("adapter:          {}", a.name);
            println!("backend:          {}", a.backend);
            println!(
                "type:             {}{}",
                a.device_type,
                if a.is_cpu { " (software)" } else { "" }
            );
            println!("driver:           {}", a.driver);
            println!("max binding:      {} MiB", a.max_binding_bytes >> 20);
            println!("max buffer:       {} MiB", a.max_buffer_bytes >> 20);
            println!(
                "max workgroups:   {} per dimension",
                a.max_workgroups_per_dim
            );
            println!(
                "timestamp query:  {}",
                if a.timestamps { "yes" } else { "no" }
            );
            println!(
                "shader f64:       {}",
                if a.shader_f64 { "yes" } else { "no" }
            );
            println!(
                "subgroups:        {}",
                if a.subgroups { "yes" } else { "no" }
            );
            println!(
                "conv kernels:     {}",
                postergrad::profile::conv_kernels(&gpu)?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Gradcheck {
            op,
            list,
            seed,
            shader_dir,
            verbose,
            dtype,
        } => {
            if list {
                for (op, shape) in gradcheck::list(op.as_deref(), seed) {
                    println!("{op:<10} {shape}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let gpu = if dtype == "f64" {
                match device(Precision::F64) {
                    Ok(gpu) => {
                        eprintln!("adapter: {} (kernels in f64)", gpu.adapter());
                        gpu
                    }
                    Err(e @ postergrad::Error::Precision { .. }) => {
                        eprintln!("note: {e}; running the f32 suite instead");
                        open_gpu()?
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                open_gpu()?
            };
            if let Some(dir) = shader_dir {
                let names = gpu
                    .override_shaders_from_dir(&dir)
                    .with_context(|| format!("loading shader overrides from {}", dir.display()))?;
                eprintln!(
                    "shader overrides from {}: {}",
                    dir.display(),
                    names.join(", ")
                );
            }
            let report = gradcheck::run(&gpu, &gradcheck::Options { seed, ops: op })?;
            println!("kernels in {}\n{report}", gpu.precision());
            if verbose || !report.passed() {
                println!("\n{}", report.details(verbose));
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Train(args) => cmd_train(args),
        Command::Evaluate {
            checkpoint,
            data,
            limit,
            batch,
            json,
        } => cmd_evaluate(&checkpoint, data, limit, batch, json),
        Command::Predict {
            checkpoint,
            images,
            top,
            json,
        } => cmd_predict(&checkpoint, &images, top, json),
        Command::Profile {
            model,
            size,
            batch,
            steps,
            json,
        } => {
            let kind: ModelKind = model.parse()?;
            let config = postergrad::profile::ProfileConfig {
                model: kind,
                size: size.unwrap_or(kind.default_size()),
                batch,
                steps,
                labels: 25,
            };
            let gpu = device(Precision::F32)?;
            let report = postergrad::profile::profile(&gpu, config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", postergrad::profile::table(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plot { run } => {
            let png = train::replot(&run)?;
            println!("{}", png.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Summary {
            model,
            size,
            labels,
        } => {
            let kind: ModelKind = model.parse()?;
            print!(
                "{}",
                nn::summary(kind, size.unwrap_or(kind.default_size()), labels)?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
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

fn cmd_train(a: TrainArgs) -> anyhow::Result<ExitCode> {
    let model: ModelKind = a.model.parse()?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| default_run_dir(&a.model, &a.data, a.resume));
    let config = train::TrainConfig {
        data: a.data,
        model,
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
    let bar = ProgressBar::hidden();
    let started = Instant::now();
    // Without a terminal (CI logs, nohup) the bar is invisible: print a
    // plain progress line every 30 s instead.
    let plain = !std::io::stderr().is_terminal();
    let mut epoch_started = Instant::now();
    let mut last_line = Instant::now();
    let mut epoch_total = 0usize;
    let summary = train::train(&gpu, &config, |event| match event {
        Event::Info(line) => bar.suspend(|| println!("{line}")),
        Event::Warning(line) => bar.suspend(|| eprintln!("warning: {line}")),
        Event::EpochStart {
            epoch,
            epochs,
            samples,
        } => {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            bar.reset();
            bar.set_length(samples as u64);
            bar.set_position(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:28}] {pos}/{len} posters · {per_sec} · loss {msg} · ETA {eta}",
                )
                .expect("template")
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {epoch}/{epochs}"));
            epoch_started = Instant::now();
            last_line = Instant::now();
            epoch_total = samples;
            bar.set_message("…");
        }
        Event::Step { samples, loss } => {
            bar.set_position(samples as u64);
            bar.set_message(format!("{loss:.4}"));
            if plain && last_line.elapsed().as_secs() >= 30 {
                last_line = Instant::now();
                let rate = samples as f64 / epoch_started.elapsed().as_secs_f64().max(1e-9);
                eprintln!(
                    "  {samples}/{epoch_total} posters, {rate:.1} posters/s, loss {loss:.4}, ETA {:.0} s",
                    (epoch_total - samples) as f64 / rate.max(1e-9)
                );
            }
        }
        Event::Validating { samples } => {
            bar.set_message(format!("validating {samples} posters"));
        }
        Event::EpochEnd(r) => {
            bar.finish_and_clear();
            println!(
                "epoch {:>2}/{} - {:.0}s {:.0} ms/poster - loss: {:.4} - binary_accuracy: {:.4} - val_loss: {:.4} - val_binary_accuracy: {:.4} - val_map: {:.4} - val_precision@3: {:.4}",
                r.epoch,
                config.epochs,
                r.seconds,
                1e3 / r.samples_per_second.max(1e-9),
                r.loss,
                r.binary_accuracy,
                r.val_loss,
                r.val_binary_accuracy,
                r.val_map,
                r.val_precision_at_3
            );
            if r.loader_wait_seconds > 0.05 * r.seconds {
                println!(
                    "  (the GPU waited {:.1} s for image decoding this epoch; more --workers or a smaller --size would help)",
                    r.loader_wait_seconds
                );
            }
        }
    })?;
    bar.finish_and_clear();
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

fn print_metric_rows(m: &Metrics, b: &Metrics) {
    for (name, x, y) in [
        ("bce (lower is better)", m.bce, b.bce),
        ("binary accuracy @0.5", m.binary_accuracy, b.binary_accuracy),
        ("mAP (macro)", m.map, b.map),
        ("micro-F1 @0.5", m.micro_f1, b.micro_f1),
        ("precision@3", m.precision_at_3, b.precision_at_3),
    ] {
        println!("  {name:<26}{x:>8.4}{y:>12.4}");
    }
}

fn cmd_evaluate(
    path: &Path,
    data: Option<PathBuf>,
    limit: Option<usize>,
    batch: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if batch == 0 {
        anyhow::bail!("--batch: must be at least 1");
    }
    let ckpt = Checkpoint::load(path)?;
    let set = match &data {
        Some(dir) => PosterSet::open(dir)?,
        None => PosterSet::synthetic(SyntheticConfig {
            count: 1000,
            seed: 1,
        }),
    };
    if !json {
        for w in &set.warnings {
            eprintln!("warning: {w}");
        }
    }
    if set.genres != ckpt.info.genres {
        anyhow::bail!(
            "{} has the genres [{}] but the checkpoint {} was trained on [{}]",
            set.describe(),
            set.genres.join(", "),
            path.display(),
            ckpt.info.genres.join(", ")
        );
    }
    let gpu = if json {
        device(Precision::F32)?
    } else {
        open_gpu()?
    };
    let model = ckpt.build_model(&gpu)?;
    let mut rows: Vec<usize> = (0..set.posters.len()).collect();
    if let Some(n) = limit {
        rows.truncate(n);
    }
    let set = Arc::new(set);
    let cache = Arc::new(ImageCache::new(set.posters.len(), model.size, 0));
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(rows.len() as u64).with_style(
            ProgressStyle::with_template("evaluating [{bar:28}] {pos}/{len} posters · ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        )
    };
    let pr = train::predict_rows(
        &gpu,
        &model,
        &set,
        &cache,
        &rows,
        batch,
        Loader::default_workers(),
        |done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    for (_, message) in &pr.failed {
        eprintln!("warning: {message}; skipped");
    }
    if pr.rows.is_empty() {
        // Metrics over no poster would print as numbers that mean nothing.
        anyhow::bail!(
            "--data {}: none of the {} posters could be read, so there is nothing to evaluate; \
             the first: {}; replace the damaged posters",
            set.describe(),
            rows.len(),
            pr.failed
                .iter()
                .take(3)
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let genres = set.genres.len();
    let report = MetricsReport {
        model: Metrics::compute(&pr.probabilities, &pr.targets, genres),
        baseline: Metrics::baseline(&ckpt.info.label_prior, &pr.targets),
        count: pr.rows.len(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{} ({} at {}×{}, epoch {}) on {}: {} posters{}",
            path.display(),
            ckpt.info.model,
            ckpt.info.size,
            ckpt.info.size,
            ckpt.info.epoch,
            set.describe(),
            report.count,
            if pr.failed.is_empty() {
                String::new()
            } else {
                format!(" ({} skipped: unreadable images)", pr.failed.len())
            }
        );
        println!("  {:<26}{:>8}{:>12}", "metric", "model", "baseline");
        print_metric_rows(&report.model, &report.baseline);
        println!("  (baseline: every poster scored with the genre frequencies of the checkpoint's training split)");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_predict(
    path: &Path,
    images: &[PathBuf],
    top: usize,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let ckpt = Checkpoint::load(path)?;
    let gpu = if json {
        device(Precision::F32)?
    } else {
        open_gpu()?
    };
    let model = ckpt.build_model(&gpu)?;
    let genres = &ckpt.info.genres;
    let size = model.size;
    let mut results = vec![];
    let mut failed = 0;
    for image in images {
        let pixels = match postergrad::posters::load_image_file(image, size) {
            Ok(p) => p,
            Err(message) => {
                eprintln!("error: {}: {message}", image.display());
                failed += 1;
                continue;
            }
        };
        let mut x = Vec::new();
        postergrad::posters::append_chw(&mut x, &pixels, size);
        let tape = Tape::new(&gpu, Mode::Inference);
        let xv = tape.constant(Tensor::from_slice(&gpu, [1, 3, size, size], &x)?);
        let p = model.forward(&tape, &xv, 0)?.value.to_vec(&gpu)?;
        let best = postergrad::metrics::top_k(&p, top.min(genres.len()));
        if json {
            results.push(serde_json::json!({
                "image": image.display().to_string(),
                "top": best.iter().map(|&g| serde_json::json!({"genre": genres[g], "probability": p[g]})).collect::<Vec<_>>(),
                "probabilities": genres.iter().zip(&p).map(|(g, v)| (g.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
            }));
        } else {
            let list: Vec<String> = best
                .iter()
                .map(|&g| format!("{} {:.2}", genres[g], p[g]))
                .collect();
            println!("{}: {}", image.display(), list.join(", "));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    quiet_mesa();
    let cli = Cli::parse();
    let weight_chunk = cli.weight_chunk.or_else(|| {
        let v = std::env::var("POSTERGRAD_WEIGHT_CHUNK").ok()?;
        match parse_weight_chunk(&v) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(2);
            }
        }
    });
    let _ = TUNING.set(postergrad::gpu::Tuning { weight_chunk });
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
