//! The `postergrad` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use postergrad::{gradcheck, train, Gpu};

#[derive(Parser)]
#[command(
    name = "postergrad",
    version,
    about = "A from-scratch GPU compute engine (WGSL through wgpu) that trains a movie-poster genre CNN"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the GPU adapter postergrad picks, its limits and features.
    Info,
    /// Check every backward kernel against finite differences and an f64 CPU reference.
    Gradcheck {
        /// Only these ops (comma-separated): dense, relu, sigmoid, bce, conv2d, batchnorm, maxpool, dropout, adam.
        #[arg(long, value_delimiter = ',')]
        op: Option<Vec<String>>,
        /// Seed for the random inputs, upstream gradients and directions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Load shaders/*.wgsl overrides from this directory (to study a modified kernel).
        #[arg(long)]
        shader_dir: Option<PathBuf>,
    },
    /// Train a model (today: the MLP on the embedded synthetic multi-label data).
    Train {
        /// Passes over the training set.
        #[arg(long, default_value_t = 20)]
        epochs: usize,
        /// Rows per step.
        #[arg(long, default_value_t = 32)]
        batch: usize,
        /// Adam learning rate.
        #[arg(long, default_value_t = 1e-3, allow_negative_numbers = true)]
        lr: f64,
        /// Seed for data, initialisation and shuffling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
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
    let gpu = Gpu::new()?;
    eprintln!("adapter: {}", gpu.adapter());
    Ok(gpu)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Info => {
            let gpu = Gpu::new()?;
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Gradcheck {
            op,
            seed,
            shader_dir,
        } => {
            let gpu = open_gpu()?;
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
            println!("{report}");
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Train {
            epochs,
            batch,
            lr,
            seed,
        } => {
            let gpu = open_gpu()?;
            let config = train::MlpTrainConfig {
                epochs,
                batch,
                adam: postergrad::ops::AdamConfig {
                    learning_rate: lr,
                    ..Default::default()
                },
                seed,
                ..Default::default()
            };
            train::train_mlp_synthetic(&gpu, &config, |line| println!("{line}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    quiet_mesa();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
