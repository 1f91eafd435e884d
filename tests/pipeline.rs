//! The poster pipeline: dataset parsing and its errors, skipped images,
//! training runs (deterministic, resumable bit for bit), checkpoints, and
//! the train → evaluate → predict commands on a small poster directory.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use postergrad::checkpoint::Checkpoint;
use postergrad::nn::ModelKind;
use postergrad::posters::{PosterSet, SyntheticConfig};
use postergrad::train::{train, TrainConfig};
use postergrad::{Error, Gpu};

use common::tmp;

fn write_csv(dir: &Path, text: &str) {
    std::fs::write(dir.join("train.csv"), text).unwrap();
}

/// A poster directory in the tutorial's layout, drawn from the synthetic set.
fn poster_dir(name: &str, count: usize, size: usize) -> PathBuf {
    let dir = tmp(name);
    common::poster_dir(&dir, count, size);
    dir
}

fn expect_data_error(csv: &str, needles: &[&str]) {
    let dir = tmp("csv");
    write_csv(&dir, csv);
    let err = PosterSet::open(&dir).unwrap_err();
    assert!(matches!(err, Error::Data { .. }), "{err:?}");
    let msg = err.to_string();
    for n in needles {
        assert!(msg.contains(n), "`{n}` not in: {msg}");
    }
}

#[test]
fn malformed_csv_files_are_errors_naming_the_line() {
    expect_data_error(
        "Name,Genre,Drama\nx,\"['Drama']\",1\n",
        &["train.csv, line 1", "no `Id` column"],
    );
    expect_data_error(
        "Id,Genre,Drama,Comedy\na,\"['Drama']\",1,0\nb,\"['Comedy']\",0,2\n",
        &["line 3", "Id b", "genre `Comedy` is `2`", "expected 0 or 1"],
    );
    expect_data_error(
        "Id,Genre,Drama,Comedy\na,['Drama', 'Comedy'],1,1\n",
        &["line 2", "5 columns, but the header has 4"],
    );
    expect_data_error(
        "Id,Genre,Drama\na,\"['Drama']\",1\nb,\"[]\",0\na,\"[]\",0\n",
        &["Id a appears on lines 2 and 4 with different labels"],
    );
    expect_data_error("Id,Genre,Drama\n", &["has no rows"]);
}

#[test]
fn the_real_files_quirks_are_handled() {
    let dir = tmp("dupes");
    write_csv(
        &dir,
        "Id,Genre,Drama,N/A\na,\"['Drama']\",1,0\nb,\"['N/A']\",0,1\na,\"['Drama']\",1,0\n",
    );
    let set = PosterSet::open(&dir).unwrap();
    assert_eq!(set.genres, vec!["Drama", "N/A"]);
    assert_eq!(set.posters.len(), 2);
    assert_eq!(set.posters[1].labels, vec![0.0, 1.0]);
    assert_eq!(set.posters[1].line, 3);
    assert_eq!(set.warnings.len(), 1);
    assert!(set.warnings[0].contains("Id a appears on lines 2 and 4 with identical labels"));
}

#[test]
fn the_shuffled_split_is_seeded_and_limit_cuts_it() {
    let set = PosterSet::synthetic(SyntheticConfig {
        count: 100,
        seed: 0,
    });
    let (t, v) = set.split(3, None, 0.15).unwrap();
    assert_eq!((t.len(), v.len()), (85, 15));
    assert_eq!(set.split(3, None, 0.15).unwrap(), (t.clone(), v.clone()));
    assert_ne!(set.split(4, None, 0.15).unwrap().0, t);
    let (t20, v20) = set.split(3, Some(20), 0.15).unwrap();
    assert_eq!((t20.len(), v20.len()), (17, 3));
    assert_eq!(t20[..], t[..17]);
    for bad in [0.0, 1.0, 1.5, f64::NAN] {
        let msg = set.split(3, None, bad).unwrap_err().to_string();
        assert!(
            msg.contains("--val-split: must be between 0 and 1"),
            "{msg}"
        );
    }
    let msg = set.split(3, Some(101), 0.15).unwrap_err().to_string();
    assert!(
        msg.contains("--limit 101: exceeds the 100 posters"),
        "{msg}"
    );
    let msg = set.split(3, Some(1), 0.15).unwrap_err().to_string();
    assert!(msg.contains("leaves no training posters out of 1"), "{msg}");
}

fn small_config(out: PathBuf) -> TrainConfig {
    TrainConfig {
        synthetic: SyntheticConfig { count: 80, seed: 2 },
        model: ModelKind::Poster,
        size: Some(46),
        epochs: 2,
        batch: 16,
        out,
        workers: 2,
        ..Default::default()
    }
}

#[test]
fn an_interrupted_run_resumes_to_exactly_the_uninterrupted_result() {
    let gpu = Gpu::new().unwrap();
    let a = small_config(tmp("full"));
    let full = train(&gpu, &a, |_| {}).unwrap();
    assert_eq!(full.history.len(), 2);

    let b = TrainConfig {
        epochs: 1,
        ..small_config(tmp("half"))
    };
    train(&gpu, &b, |_| {}).unwrap();
    // Continuing without --resume must refuse and leave the run untouched.
    let before = std::fs::read(b.out.join("model.safetensors")).unwrap();
    let err = train(&gpu, &b, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("already holds a run; pass --resume to continue it, --force"),
        "{err}"
    );
    assert_eq!(
        before,
        std::fs::read(b.out.join("model.safetensors")).unwrap()
    );
    // Changed settings are refused on resume.
    let other = TrainConfig {
        batch: 8,
        resume: true,
        epochs: 2,
        ..b.clone()
    };
    let err = train(&gpu, &other, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("other settings: batch: saved 16, now 8"),
        "{err}"
    );

    // Resume, and stop (as Ctrl-C does) after the second step of epoch 2.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let mut steps = 0;
    let stopped = train(
        &gpu,
        &TrainConfig {
            epochs: 2,
            resume: true,
            stop: Some(stop),
            ..b.clone()
        },
        |e| {
            if let postergrad::train::Event::Step { .. } = e {
                steps += 1;
                if steps == 2 {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
            }
        },
    )
    .unwrap();
    let at = stopped.stopped.expect("the run did not stop");
    assert_eq!((at.epoch, at.batch, at.batches, at.step), (2, 2, 5, 7));
    // Then finish it: the partial epoch continues from batch 3.
    let resumed = train(
        &gpu,
        &TrainConfig {
            epochs: 2,
            resume: true,
            ..b.clone()
        },
        |_| {},
    )
    .unwrap();
    let strip = |h: &[postergrad::plot::EpochRecord]| -> Vec<[f64; 7]> {
        h.iter()
            .map(|r| {
                [
                    r.loss,
                    r.binary_accuracy,
                    r.val_loss,
                    r.val_binary_accuracy,
                    r.val_map,
                    r.val_micro_f1,
                    r.val_precision_at_3,
                ]
            })
            .collect()
    };
    assert_eq!(strip(&full.history), strip(&resumed.history));
    let (x, y) = (
        Checkpoint::load(&a.out.join("model.safetensors")).unwrap(),
        Checkpoint::load(&b.out.join("model.safetensors")).unwrap(),
    );
    assert_eq!((x.info.epoch, x.info.step), (2, 10));
    assert_eq!(x.info, y.info);
    for name in [
        "conv2d.kernel",
        "batch_normalization_5.moving_variance",
        "dense_2.bias",
    ] {
        let shape = match name {
            "conv2d.kernel" => vec![16, 3, 3, 3],
            "dense_2.bias" => vec![8],
            _ => vec![128],
        };
        assert_eq!(
            x.tensor(name, &shape).unwrap(),
            y.tensor(name, &shape).unwrap(),
            "{name}"
        );
    }
    // The run directory is complete.
    for f in [
        "history.csv",
        "learning_curve.png",
        "metrics.json",
        "config.json",
        "train_state.safetensors",
    ] {
        assert!(b.out.join(f).is_file(), "{f} missing");
    }
    let history = std::fs::read_to_string(b.out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "{history}");
    assert!(history.starts_with("epoch,loss,binary_accuracy,val_loss"));
}

#[test]
fn checkpoints_round_trip_and_bad_ones_are_named() {
    let gpu = Gpu::new().unwrap();
    let c = TrainConfig {
        epochs: 1,
        model: ModelKind::Mlp,
        ..small_config(tmp("ckpt"))
    };
    train(&gpu, &c, |_| {}).unwrap();
    let path = c.out.join("model.safetensors");
    let ckpt = Checkpoint::load(&path).unwrap();
    assert_eq!(ckpt.info.model, "mlp");
    assert_eq!(ckpt.info.genres.len(), 8);
    assert_eq!(ckpt.info.label_prior.len(), 8);
    let model = ckpt.build_model(&gpu).unwrap();
    let w = model
        .param("dense.kernel")
        .unwrap()
        .value
        .to_vec(&gpu)
        .unwrap();
    assert_eq!(w, ckpt.tensor("dense.kernel", &[3 * 46 * 46, 64]).unwrap());

    let err = ckpt
        .tensor("dense.kernel", &[3, 64])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tensor `dense.kernel` has shape [6348, 64], the model needs [3, 64]"),
        "{err}"
    );
    let bad = c.out.join("broken.safetensors");
    std::fs::write(&bad, b"not a checkpoint").unwrap();
    let err = Checkpoint::load(&bad).err().unwrap().to_string();
    assert!(
        err.contains("broken.safetensors") && err.contains("not a safetensors file"),
        "{err}"
    );
}

#[test]
fn missing_and_unreadable_images_are_skipped_and_counted_or_fatal_with_strict() {
    let gpu = Gpu::new().unwrap();
    let dir = poster_dir("badimages", 40, 46);
    let set = PosterSet::open(&dir).unwrap();
    let (gone, broken) = (&set.posters[3].id, &set.posters[7].id);
    std::fs::remove_file(dir.join("Images").join(format!("{gone}.jpg"))).unwrap();
    std::fs::write(dir.join("Images").join(format!("{broken}.jpg")), b"garbage").unwrap();
    let config = TrainConfig {
        data: Some(dir.clone()),
        epochs: 1,
        model: ModelKind::Mlp,
        ..small_config(tmp("badimages-run"))
    };
    let mut warnings = vec![];
    let summary = train(&gpu, &config, |e| {
        if let postergrad::train::Event::Warning(w) = e {
            warnings.push(w)
        }
    })
    .unwrap();
    assert_eq!(summary.skipped, 2, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(gone.as_str()) && w.contains("file not found")),
        "{warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(broken.as_str()) && w.contains(".jpg")),
        "{warnings:?}"
    );
    // No image at all: an error saying where they belong.
    let empty = tmp("noimages");
    write_csv(&empty, "Id,Genre,Drama\na,\"['Drama']\",1\nb,\"[]\",0\n");
    let err = train(
        &gpu,
        &TrainConfig {
            data: Some(empty.clone()),
            out: tmp("noimages-run"),
            ..config.clone()
        },
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nor any of the 2 images") && err.contains("Images/<Id>.jpg"),
        "{err}"
    );
    let strict = TrainConfig {
        strict: true,
        out: tmp("badimages-strict"),
        ..config
    };
    let err = train(&gpu, &strict, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains(gone.as_str()) && err.contains("file not found"),
        "{err}"
    );
}

fn postergrad(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn train_evaluate_predict_on_a_poster_directory() {
    let dir = poster_dir("cli", 60, 46);
    let out = tmp("cli-run");
    let (d, o) = (dir.to_str().unwrap(), out.to_str().unwrap());
    let (ok, stdout, stderr) = postergrad(&[
        "train", "--data", d, "--size", "46", "--epochs", "1", "--batch", "16", "--out", o,
    ]);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("epoch  1/1 -") && stdout.contains("val_map:"),
        "{stdout}"
    );
    assert!(stdout.contains("label-prior baseline"), "{stdout}");

    let ckpt = out.join("model.safetensors");
    let c = ckpt.to_str().unwrap();
    let (ok, stdout, stderr) = postergrad(&["evaluate", "--checkpoint", c, "--data", d, "--json"]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["count"], 60);
    for side in ["model", "baseline"] {
        for key in [
            "bce",
            "binary_accuracy",
            "map",
            "micro_f1",
            "precision_at_3",
        ] {
            let x = v[side][key].as_f64().unwrap_or(-1.0);
            assert!((0.0..=10.0).contains(&x), "{side}.{key} = {x}");
        }
    }
    let (ok, stdout, _) = postergrad(&["evaluate", "--checkpoint", c, "--data", d]);
    assert!(
        ok && stdout.contains("precision@3") && stdout.contains("60 posters"),
        "{stdout}"
    );

    let img = dir.join("Images").join("synthetic-00000.jpg");
    let (ok, stdout, stderr) = postergrad(&[
        "predict",
        "--checkpoint",
        c,
        img.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top = v[0]["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    let p: Vec<f64> = top
        .iter()
        .map(|t| t["probability"].as_f64().unwrap())
        .collect();
    assert!(p[0] >= p[1] && p[1] >= p[2] && p[2] > 0.0, "{p:?}");

    // Bad inputs: clear errors, no panic.
    let (ok, _, stderr) = postergrad(&["predict", "--checkpoint", c, "/nonexistent.jpg"]);
    assert!(!ok && stderr.contains("/nonexistent.jpg"), "{stderr}");
    let (ok, _, stderr) = postergrad(&["evaluate", "--checkpoint", "/nonexistent.safetensors"]);
    assert!(
        !ok && stderr.contains("/nonexistent.safetensors"),
        "{stderr}"
    );
    let (ok, _, stderr) = postergrad(&["train", "--data", "/nonexistent-dir"]);
    assert!(
        !ok && stderr.contains("/nonexistent-dir") && stderr.contains("not a directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_tuned_recipe_learns_the_synthetic_posters_from_pixels() {
    let gpu = Gpu::new().unwrap();
    let config = TrainConfig {
        synthetic: SyntheticConfig {
            count: 480,
            seed: 0,
        },
        recipe: postergrad::train::Recipe::Tuned,
        epochs: 3,
        batch: 12,
        val_split: 0.25,
        ..small_config(tmp("learns"))
    };
    let s = train(&gpu, &config, |_| {}).unwrap();
    let (m, b) = (s.last.unwrap(), s.baseline);
    println!("model {m:?}\nbaseline {b:?}");
    assert!(m.map > b.map + 0.15, "mAP {} vs baseline {}", m.map, b.map);
    assert!(m.bce < b.bce, "bce {} vs baseline {}", m.bce, b.bce);
    assert!(
        m.precision_at_3 > b.precision_at_3,
        "precision@3 {} vs baseline {}",
        m.precision_at_3,
        b.precision_at_3
    );
}

#[test]
fn plot_redraws_a_run_directory_and_names_a_bad_file() {
    let run = tmp("replot");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(
        run.join("history.csv"),
        "epoch,loss,binary_accuracy,val_loss,val_binary_accuracy,val_map,val_micro_f1,val_precision_at_3,seconds,samples_per_second,loader_wait_seconds\n\
         1,0.27,0.90,0.45,0.87,0.13,0.25,0.31,10.0,3.7,0.1\n\
         2,0.25,0.91,0.26,0.91,0.15,0.24,0.37,10.0,3.4,0.05\n",
    )
    .unwrap();
    let metrics = |bce: f64| {
        format!(
            r#"{{"bce": {bce}, "binary_accuracy": 0.9, "map": 0.1, "micro_f1": 0.3, "precision_at_3": 0.35}}"#
        )
    };
    std::fs::write(
        run.join("metrics.json"),
        format!(
            r#"{{"model": {}, "baseline": {}, "count": 977}}"#,
            metrics(0.25),
            metrics(0.245)
        ),
    )
    .unwrap();
    std::fs::write(
        run.join("config.json"),
        r#"{"settings": {"model": "poster", "size": 128, "data": "../shared/posters (6515 posters, 25 genres)"}}"#,
    )
    .unwrap();
    let run_s = run.to_str().unwrap();
    let (ok, stdout, stderr) = postergrad(&["plot", run_s]);
    assert!(ok, "{stderr}");
    let png = run.join("learning_curve.png");
    assert_eq!(stdout.trim(), png.display().to_string());
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);
    assert!(!run.join(".learning_curve.tmp.png").exists());

    // a broken metrics.json is named, and the image already there survives
    std::fs::write(run.join("metrics.json"), "{\"model\":").unwrap();
    let (ok, _, stderr) = postergrad(&["plot", run_s]);
    assert!(!ok);
    assert!(
        stderr.contains("metrics.json") && stderr.contains("JSON"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&png).unwrap(), bytes);
    // no run there at all
    let (ok, _, stderr) = postergrad(&["plot", &format!("{run_s}-missing")]);
    assert!(!ok && stderr.contains("history.csv"), "{stderr}");
    std::fs::remove_dir_all(&run).unwrap();
}
