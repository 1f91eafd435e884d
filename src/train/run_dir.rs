//! The run directory: its lock, its files (each written atomically), and
//! resuming from the state it holds.

use std::path::{Path, PathBuf};

use super::{Event, MetricsReport, PartialEpoch, RunSettings, TrainConfig};
use crate::checkpoint::{self, write_atomically, Checkpoint, CheckpointInfo};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::metrics::Metrics;
use crate::nn::Model;
use crate::ops::Adam;
use crate::plot::{learning_curve, EpochRecord};
use crate::tensor::Tensor;

/// Makes and locks the run directory, clears a killed run's temporaries,
/// and refuses to overwrite a run unless asked to continue it. The lock is
/// held until the returned value is dropped.
pub(super) fn open(config: &TrainConfig) -> Result<RunLock> {
    let out = &config.out;
    std::fs::create_dir_all(out).map_err(|source| Error::Io {
        path: out.display().to_string(),
        error: source,
    })?;
    // Locked before anything in the directory is touched: the temporaries
    // removed next could be another live run's.
    let lock = lock_run_dir(out)?;
    remove_stale_temporaries(out);
    if config.resume && config.force {
        return Err(Error::Config {
            what: "--resume and --force".into(),
            message: "choose one: --resume continues the run, --force starts it afresh".into(),
        });
    }
    let has_run =
        out.join("train_state.safetensors").exists() || out.join("model.safetensors").exists();
    if !config.resume && !config.force && has_run {
        return Err(Error::Config {
            what: format!("--out {}", out.display()),
            message: "already holds a run; pass --resume to continue it, --force to start it \
                      afresh, or choose another --out"
                .into(),
        });
    }
    Ok(lock)
}

/// What a resumed run starts from.
#[derive(Default)]
pub(super) struct Resumed {
    /// Epochs already completed.
    pub start_epoch: usize,
    pub history: Vec<EpochRecord>,
    /// The running sums of an epoch a Ctrl-C cut short.
    pub partial: Option<PartialEpoch>,
    /// The state on disk a failure can fall back to, in words.
    pub saved: Option<String>,
}

/// Restores the model, Adam's moments and step, the history and any
/// part-done epoch from `train_state.safetensors`, after checking that the
/// run was started with the same settings.
pub(super) fn resume(
    gpu: &Gpu,
    config: &TrainConfig,
    settings: &RunSettings,
    model: &Model,
    adam: &mut Adam,
    on: &mut impl FnMut(Event),
) -> Result<Resumed> {
    let out = &config.out;
    let state_path = out.join("train_state.safetensors");
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
    if &saved_settings != settings {
        return Err(Error::Config {
            what: "--resume".into(),
            message: format!(
                "the run in {} was started with other settings: {}; resume with the \
                 run's own settings (see its config.json), or start a new run with --out",
                out.display(),
                settings_diff(&saved_settings, settings)
            ),
        });
    }
    state.restore(gpu, model)?;
    for (p, (m, v)) in model.params().iter().zip(adam.moments()) {
        m.write(gpu, state.tensor(&format!("{}.adam_m", p.name), m.dims())?)?;
        v.write(gpu, state.tensor(&format!("{}.adam_v", p.name), v.dims())?)?;
    }
    adam.t = state.info.step;
    let start_epoch = state.info.epoch;
    let partial = state
        .metadata
        .get("partial")
        .and_then(|s| serde_json::from_str::<PartialEpoch>(s).ok())
        .filter(|p| p.epoch == start_epoch + 1);
    let saved = Some(describe_state(
        &state_path,
        start_epoch,
        adam.t,
        partial.as_ref(),
    ));
    let hist_path = out.join("history.csv");
    let mut history = vec![];
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
    Ok(Resumed {
        start_epoch,
        history,
        partial,
        saved,
    })
}

/// Deletes the `.<name>.tmp-<pid>` files a killed run can leave behind (each
/// file is written to such a temporary and renamed into place; the file
/// itself is always whole).
/// `<out>/.lock`, locked for a run's life (the lock goes with the process,
/// even when it is killed): a second run on the same directory is refused
/// instead of interleaving its files with the first one's.
pub(super) struct RunLock {
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

/// Brings the run directory up to date after an epoch, each file atomically.
/// `train_state.safetensors` goes last: if the process dies before it, a
/// resume redoes the epoch (and drops any history row beyond the state's).
#[allow(clippy::too_many_arguments)] // every file of the run directory, from the one place that writes them all
pub(super) fn save_epoch(
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
pub(super) fn save_state(
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

/// "runs/x/train_state.safetensors (after epoch 2, step 350)".
pub(super) fn describe_state(
    path: &Path,
    epoch: usize,
    step: u64,
    partial: Option<&PartialEpoch>,
) -> String {
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
