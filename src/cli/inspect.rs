//! The commands that look at the engine rather than train: `info`,
//! `gradcheck`, `profile`, `summary`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use postergrad::nn::{self, ModelKind};
use postergrad::{gradcheck, Precision};

use crate::{at_least_one, device, open_gpu};

#[derive(clap::Args)]
pub struct GradcheckArgs {
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
    pub dtype: String,
    /// Only the cases of this shape, as the report prints it (what a
    /// failure's re-run line passes), e.g. '[3, 37]'.
    #[arg(long)]
    pub case: Option<String>,
    /// One random direction per gradient in the central differences
    /// (PyTorch's fast mode): quicker, weaker.
    #[arg(long)]
    pub fast: bool,
    /// Print one JSON object per check instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a JUnit XML report (one test case per check) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Instead of checking the kernels, check the checks: N seeded mutants of
    /// every kernel the selected ops run, each run against the op's checks
    /// (fast mode); reports killed / survived / invalid per kernel and every
    /// survivor, and fails on a survivor not in tests/equivalent_mutants.txt.
    #[arg(long, value_name = "N")]
    pub mutants: Option<usize>,
    /// With --mutants: the reviewed equivalent mutants to accept, one per
    /// line as `kernel | line before | line after | why` (default: the list
    /// built in, tests/equivalent_mutants.txt): a suite of modified kernels
    /// keeps its own.
    #[arg(long, value_name = "FILE", requires = "mutants")]
    pub equivalents: Option<PathBuf>,
    /// Check a whole model instead of the ops: the loss's gradient with
    /// respect to every parameter tensor against central differences of the
    /// whole model, in f64 where the adapter has it (poster, poster5, mlp;
    /// resnet18/34/50 too, slowly).
    #[arg(long)]
    pub model: Option<String>,
    /// With --model: the input size (square).
    #[arg(long, default_value_t = 48, value_parser = at_least_one)]
    pub size: usize,
    /// With --model: the batch.
    #[arg(long, default_value_t = 4, value_parser = at_least_one)]
    pub batch: usize,
    /// Run these kernel variants wherever they fit, instead of the
    /// adapter's picks (e.g. conv2d_backward_weight): a variant other
    /// adapters run, checked on this one.
    #[arg(long, value_delimiter = ',')]
    pub variant: Option<Vec<String>>,
}

#[derive(clap::Args)]
pub struct ProfileArgs {
    /// poster, poster5, mlp, resnet18, resnet34 or resnet50.
    #[arg(long, default_value = "poster")]
    model: String,
    /// training (forward, backward, Adam) or inference (the forward alone: scoring, feature extraction).
    #[arg(long, default_value = "training")]
    pass: String,
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
}

#[derive(clap::Args)]
pub struct SummaryArgs {
    /// poster, poster5 or mlp.
    #[arg(long, default_value = "poster")]
    model: String,
    /// Input size (square); default: the model's tutorial size (350, or 400 for poster5).
    #[arg(long, value_parser = at_least_one)]
    size: Option<usize>,
    /// Number of outputs (genres).
    #[arg(long, default_value_t = 25, value_parser = at_least_one)]
    labels: usize,
}

/// The adapter postergrad picks, its limits and features, and its kernel picks.
pub fn cmd_info() -> anyhow::Result<ExitCode> {
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

pub fn cmd_gradcheck(a: GradcheckArgs) -> anyhow::Result<ExitCode> {
    if a.list {
        for (op, shape) in gradcheck::list(a.op.as_deref(), a.seed) {
            println!("{op:<10} {shape}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    // the whole model in f64 where the adapter has it
    let dtype = if a.model.is_some() {
        "f64"
    } else {
        a.dtype.as_str()
    };
    let gpu = open_checking_device(dtype)?;
    if let Some(dir) = &a.shader_dir {
        let names = gpu
            .override_shaders_from_dir(dir)
            .with_context(|| format!("loading shader overrides from {}", dir.display()))?;
        eprintln!(
            "shader overrides from {}: {}",
            dir.display(),
            names.join(", ")
        );
    }
    if let Some(names) = &a.variant {
        prefer_variants(&gpu, names)?;
    }
    if let Some(n) = a.mutants {
        let known = postergrad::ops::registry::gradcheck_ops();
        let ops: Vec<&str> = match &a.op {
            Some(names) => known
                .into_iter()
                .filter(|o| names.iter().any(|n| n == o))
                .collect(),
            None => known,
        };
        return crate::mutants::run(&gpu, &ops, n, a.seed, dtype, a.equivalents.as_deref());
    }
    let started = std::time::Instant::now();
    let (report, what) = match &a.model {
        Some(name) => {
            let check = postergrad::nn::check::ModelCheck {
                kind: name.parse()?,
                size: a.size,
                batch: a.batch,
                labels: 5,
                seed: a.seed,
                directions: 2,
            };
            (postergrad::nn::check::check_model(&gpu, &check)?, "model")
        }
        None => {
            let options = gradcheck::Options {
                seed: a.seed,
                ops: a.op.clone(),
                case: a.case.clone(),
                fast: a.fast,
            };
            (gradcheck::run(&gpu, &options)?, "kernels")
        }
    };
    print_report(&report, &a, what, started)?;
    if report.rows.is_empty() {
        anyhow::bail!(
            "--case {}: no case of that shape (see `postergrad gradcheck --list`)",
            a.case.clone().unwrap_or_default()
        );
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The device the checks run on: f64 where asked for and the adapter has
/// it, else f32 (saying so).
fn open_checking_device(dtype: &str) -> anyhow::Result<postergrad::Gpu> {
    if dtype != "f64" {
        return open_gpu();
    }
    match device(Precision::F64) {
        Ok(gpu) => {
            eprintln!("adapter: {} (kernels in f64)", gpu.adapter());
            Ok(gpu)
        }
        Err(e @ postergrad::Error::Precision { .. }) => {
            eprintln!("note: {e}; running the f32 suite instead");
            open_gpu()
        }
        Err(e) => Err(e.into()),
    }
}

/// `--variant`: these kernels run wherever they fit, for the whole process.
fn prefer_variants(gpu: &postergrad::Gpu, names: &[String]) -> anyhow::Result<()> {
    for n in names {
        if postergrad::ops::registry::op_of(n).is_none() {
            anyhow::bail!(
                "--variant {n}: no kernel of that name (see the ops' pages in docs/kernels/)"
            );
        }
    }
    // the process keeps its settings until it exits
    let prefer: &'static [&'static str] = Box::leak(
        names
            .iter()
            .map(|n| &*Box::leak(n.clone().into_boxed_str()))
            .collect::<Vec<&'static str>>()
            .into_boxed_slice(),
    );
    gpu.set_tuning(postergrad::gpu::Tuning {
        prefer,
        ..gpu.tuning()
    })?;
    eprintln!(
        "variants preferred wherever they fit: {}",
        prefer.join(", ")
    );
    Ok(())
}

/// The report as the options ask: JSON lines or the table (with details
/// of failures, or of everything with --verbose), and a JUnit file.
fn print_report(
    report: &gradcheck::Report,
    a: &GradcheckArgs,
    what: &str,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    if let Some(path) = &a.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("writing the JUnit report {}", path.display()))?;
    }
    if a.json {
        print!("{}", report.json_lines());
        return Ok(());
    }
    println!("{what} in {}\n{report}", report.precision);
    if a.verbose || !report.passed() {
        let shown = if a.verbose {
            gradcheck::Shown::All
        } else {
            gradcheck::Shown::Failures
        };
        println!("\n{}", report.details(shown));
    }
    eprintln!(
        "{} checks in {:.1} s{}",
        report.rows.len(),
        started.elapsed().as_secs_f64(),
        if a.fast { " (fast mode)" } else { "" }
    );
    Ok(())
}

pub fn cmd_profile(a: ProfileArgs) -> anyhow::Result<ExitCode> {
    let ProfileArgs {
        model,
        pass,
        size,
        batch,
        steps,
        json,
    } = a;
    let kind: ModelKind = model.parse()?;
    let config = postergrad::profile::ProfileConfig {
        model: kind,
        size: size.unwrap_or(kind.default_size()),
        batch,
        steps,
        labels: 25,
        pass: pass.parse()?,
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

pub fn cmd_summary(a: SummaryArgs) -> anyhow::Result<ExitCode> {
    let SummaryArgs {
        model,
        size,
        labels,
    } = a;
    let kind: ModelKind = model.parse()?;
    print!(
        "{}",
        nn::summary(kind, size.unwrap_or(kind.default_size()), labels)?
    );
    Ok(ExitCode::SUCCESS)
}
