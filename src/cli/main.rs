//! The `postergrad` command line: the options and the dispatch here, each
//! command in its own file (train.rs; evaluate.rs for evaluate and
//! predict; inspect.rs for info, gradcheck, profile and summary).

mod evaluate;
mod inspect;
mod mutants;
mod train;

use evaluate::{cmd_evaluate, cmd_predict};
use inspect::{
    cmd_gradcheck, cmd_info, cmd_profile, cmd_summary, GradcheckArgs, ProfileArgs, SummaryArgs,
};
use train::{cmd_train, TrainArgs};

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use postergrad::{Gpu, Precision};

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
    Gradcheck(GradcheckArgs),
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
    Profile(ProfileArgs),
    /// Print a model's layers, output shapes and parameter counts (no GPU needed).
    Summary(SummaryArgs),
    /// Redraw a run directory's learning_curve.png from its history.csv and metrics.json (no GPU needed).
    Plot {
        /// The run directory written by `train` (e.g. runs/NAME).
        run: PathBuf,
    },
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
        Command::Info => cmd_info(),
        Command::Gradcheck(args) => cmd_gradcheck(args),
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
        Command::Profile(args) => cmd_profile(args),
        Command::Plot { run } => {
            let png = postergrad::train::replot(&run)?;
            println!("{}", png.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Summary(args) => cmd_summary(args),
    }
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
    let _ = TUNING.set(postergrad::gpu::Tuning {
        weight_chunk,
        ..Default::default()
    });
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
