//! `postergrad evaluate` and `postergrad predict`: a checkpoint scored on
//! a dataset beside the label-prior baseline, and genres for posters.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use postergrad::checkpoint::Checkpoint;
use postergrad::loader::{ImageCache, Loader};
use postergrad::metrics::Metrics;
use postergrad::posters::{PosterSet, SyntheticConfig};
use postergrad::train::{self, MetricsReport};
use postergrad::{Mode, Precision, Tape, Tensor};

use crate::{device, open_gpu};

pub fn print_metric_rows(m: &Metrics, b: &Metrics) {
    for (name, x, y) in [
        ("bce (lower is better)", m.bce, b.bce),
        ("binary accuracy @0.5", m.binary_accuracy, b.binary_accuracy),
        ("mAP (macro)", m.map, b.map),
        ("micro-F1 @0.5", m.micro_f1, b.micro_f1),
        ("precision@3", m.precision_at_3, b.precision_at_3),
        ("recall@3 (top-3 accuracy)", m.recall_at_3, b.recall_at_3),
    ] {
        println!("  {name:<26}{x:>8.4}{y:>12.4}");
    }
}

pub fn cmd_evaluate(
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

pub fn cmd_predict(
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
