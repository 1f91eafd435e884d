//! Reliability: every bad input named with its fix, no lost work, numerical
//! faults caught. docs/reliability.md lists each case with the error a user
//! sees; the tests here assert those texts.

mod common;

use std::path::{Path, PathBuf};

use postergrad::posters::{load_image_file, MAX_DECODED_BYTES};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("postergrad-rel-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "`{n}` not in: {text}");
    }
    assert!(!text.contains("panicked"), "{text}");
}

/// A 40×60 poster of one colour in `color` type `T`, saved as `name`.
fn save_flat<P: image::Pixel<Subpixel: image::Primitive>>(
    dir: &Path,
    name: &str,
    pixel: P,
) -> PathBuf
where
    image::ImageBuffer<P, Vec<P::Subpixel>>: Into<image::DynamicImage>,
{
    let path = dir.join(name);
    let img = image::ImageBuffer::from_pixel(40, 60, pixel);
    let dynamic: image::DynamicImage = img.into();
    dynamic.save(&path).unwrap();
    path
}

/// Every pixel of a decoded 8×8 poster, as (r, g, b).
fn colors(path: &Path) -> Vec<[u8; 3]> {
    load_image_file(path, 8)
        .unwrap()
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect()
}

fn assert_color(path: &Path, want: [u8; 3], tol: u8) {
    for c in colors(path) {
        for k in 0..3 {
            assert!(
                c[k].abs_diff(want[k]) <= tol,
                "{}: pixel {c:?}, expected {want:?}",
                path.display()
            );
        }
    }
}

#[test]
fn every_image_format_a_poster_comes_in_is_decoded_and_converted() {
    let dir = tmp("formats");
    use image::{Luma, LumaA, Rgb, Rgba};
    assert_color(
        &save_flat(&dir, "rgb.png", Rgb([200u8, 40, 10])),
        [200, 40, 10],
        0,
    );
    assert_color(
        &save_flat(&dir, "rgb.jpg", Rgb([200u8, 40, 10])),
        [200, 40, 10],
        3,
    );
    assert_color(&save_flat(&dir, "gray.jpg", Luma([90u8])), [90, 90, 90], 2);
    assert_color(&save_flat(&dir, "gray.png", Luma([90u8])), [90, 90, 90], 0);
    assert_color(
        &save_flat(&dir, "graya.png", LumaA([90u8, 255])),
        [90, 90, 90],
        0,
    );
    assert_color(
        &save_flat(&dir, "rgba.png", Rgba([200u8, 40, 10, 128])),
        [200, 40, 10],
        0,
    );
    assert_color(
        &save_flat(&dir, "rgb16.png", Rgb([51400u16, 10280, 2570])),
        [200, 40, 10],
        0,
    );
    assert_color(
        &save_flat(&dir, "gray16.png", Luma([23130u16])),
        [90, 90, 90],
        0,
    );
    // CMYK JPEG (print-shop posters): pure cyan.
    let cmyk = dir.join("cmyk.jpg");
    let pixels: Vec<u8> = [255u8, 0, 0, 0].repeat(40 * 60);
    jpeg_encoder::Encoder::new_file(&cmyk, 95)
        .unwrap()
        .encode(&pixels, 40, 60, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    assert_color(&cmyk, [0, 255, 255], 2);
    // A big poster (4,000 × 6,000, 72 MB decoded) is decoded and shrunk.
    let big = image::RgbImage::from_pixel(4000, 6000, Rgb([10, 20, 30]));
    let big_path = dir.join("big.png");
    big.save(&big_path).unwrap();
    assert_color(&big_path, [10, 20, 30], 0);
}

#[test]
fn broken_image_files_are_named_with_what_to_do() {
    let dir = tmp("broken");
    let empty = dir.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    assert_has(
        &load_image_file(&empty, 8).unwrap_err(),
        &["empty (0 bytes)", "download the poster again"],
    );
    let text = dir.join("text.jpg");
    std::fs::write(&text, b"<html>404 Not Found</html>").unwrap();
    assert_has(
        &load_image_file(&text, 8).unwrap_err(),
        &[
            "not an image",
            "neither JPEG nor PNG",
            "convert it to JPEG or PNG",
        ],
    );
    let gone = dir.join("gone.jpg");
    assert_has(&load_image_file(&gone, 8).unwrap_err(), &["file not found"]);
    // A JPEG cut in half, as an interrupted download leaves it.
    let whole = save_flat(&dir, "whole.jpg", image::Rgb([200u8, 40, 10]));
    let bytes = std::fs::read(&whole).unwrap();
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_has(
        &load_image_file(&cut, 8).unwrap_err(),
        &[
            "a damaged or truncated JPEG file",
            "download the poster again",
        ],
    );
    let gif = dir.join("poster.jpg");
    std::fs::write(&gif, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    assert_has(
        &load_image_file(&gif, 8).unwrap_err(),
        &["a Gif image", "reads JPEG and PNG: convert it"],
    );
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A valid PNG header announcing `w`×`h` RGB pixels (a decompression bomb's
/// first bytes): the decoder must refuse it before allocating anything.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    let idat = b"IDAT\x78\x9c\x03\x00\x00\x00\x00\x01";
    png.extend(8u32.to_be_bytes());
    png.extend(idat);
    png.extend(crc32(idat).to_be_bytes());
    png.extend(0u32.to_be_bytes());
    png.extend(b"IEND");
    png.extend(crc32(b"IEND").to_be_bytes());
    png
}

#[test]
fn a_huge_image_is_refused_before_it_is_decoded() {
    let dir = tmp("huge");
    let huge = dir.join("huge.png");
    std::fs::write(&huge, png_header(30_000, 40_000)).unwrap();
    let before = std::time::Instant::now();
    let err = load_image_file(&huge, 8).unwrap_err();
    assert_has(
        &err,
        &[
            "30000×40000 pixels would take 3433 MB decoded",
            &format!(
                "more than the {} MB a poster may use",
                MAX_DECODED_BYTES >> 20
            ),
            "shrink it first",
        ],
    );
    assert!(
        before.elapsed().as_secs_f64() < 1.0,
        "decoded before refusing"
    );
}

// ---------------------------------------------------------------------------
// Numerical faults and lost devices: the run stops, its checkpoint survives.

use postergrad::checkpoint::Checkpoint;
use postergrad::nn::ModelKind;
use postergrad::posters::SyntheticConfig;
use postergrad::train::{train, Event, TrainConfig};
use postergrad::{Error, Gpu};

/// An MLP on 40 synthetic posters at 46×46: one batch per epoch (34
/// training posters, 6 held out).
fn one_batch_epochs(out: PathBuf) -> TrainConfig {
    TrainConfig {
        synthetic: SyntheticConfig { count: 40, seed: 3 },
        model: ModelKind::Mlp,
        size: Some(46),
        epochs: 3,
        batch: 34,
        out,
        workers: 1,
        ..Default::default()
    }
}

#[test]
fn a_diverging_run_stops_at_the_step_naming_the_layer_and_the_last_good_checkpoint() {
    let gpu = Gpu::new().unwrap();
    let out = tmp("nan");
    let mut config = one_batch_epochs(out.clone());
    // Step 1 moves every weight by ~3e37; step 2's first dense layer then
    // sums to +Inf, and the next one to Inf − Inf = NaN.
    config.adam.learning_rate = 1e38;
    let err = train(&gpu, &config, |_| {}).unwrap_err();
    assert!(
        matches!(&err, Error::Stopped { cause, .. } if matches!(**cause, Error::NonFinite(_))),
        "{err:?}"
    );
    let state = out.join("train_state.safetensors");
    assert_has(
        &err.to_string(),
        &[
            "training stopped at epoch 2, step 2 (batch 1 of 1)",
            "NaN or ±Inf in dense.kernel gradient (",
            "the first layer whose output is non-finite is `dense` (output [34, 64]",
            "The step was not applied. Lower --lr (now 1e38)",
            &format!(
                "the last good checkpoint, {} (after epoch 1, step 1), is intact",
                state.display()
            ),
        ],
    );
    let saved = Checkpoint::load(&state).unwrap();
    assert_eq!((saved.info.epoch, saved.info.step), (1, 1));
    let w = saved.tensor("dense.kernel", &[3 * 46 * 46, 64]).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
    assert!(
        w.iter().any(|v| v.abs() > 1e36),
        "step 1 did not take the huge step"
    );
}

#[test]
fn a_fault_in_the_first_epoch_says_no_checkpoint_exists_yet() {
    let gpu = Gpu::new().unwrap();
    let mut config = one_batch_epochs(tmp("nan-early"));
    config.synthetic.count = 200;
    config.batch = 16;
    config.adam.learning_rate = 1e38;
    let err = train(&gpu, &config, |_| {}).unwrap_err().to_string();
    assert_has(
        &err,
        &[
            "training stopped at epoch 1, step 2 (batch 2 of 11)",
            "no checkpoint had been written yet",
        ],
    );
}

#[test]
fn losing_the_device_mid_run_stops_it_with_the_last_checkpoint_intact() {
    let gpu = Gpu::new().unwrap();
    let out = tmp("lost");
    let config = one_batch_epochs(out.clone());
    let err = train(&gpu, &config, |e| {
        if let Event::EpochEnd(r) = e {
            if r.epoch == 1 {
                gpu.lose_device();
            }
        }
    })
    .unwrap_err();
    let text = err.to_string();
    println!("{text}");
    assert_has(
        &text,
        &[
            "training stopped at epoch 2, step 2 (batch 1 of 1): GPU error: device lost",
            "GPU error",
            "(after epoch 1, step 1), is intact",
            "continue with `postergrad train --resume --out",
        ],
    );
    // A new device picks the run up from that checkpoint and finishes it.
    let gpu = Gpu::new().unwrap();
    let resumed = TrainConfig {
        resume: true,
        ..config
    };
    let summary = train(&gpu, &resumed, |_| {}).unwrap();
    assert_eq!(summary.history.len(), 3);
    assert_eq!(
        Checkpoint::load(&out.join("model.safetensors"))
            .unwrap()
            .info
            .epoch,
        3
    );
}

// ---------------------------------------------------------------------------
// No lost work: Ctrl-C and SIGKILL at random moments, then --resume.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use common::QUICK_RUN as RUN;

/// `RUN` writing to `out` for `epochs` epochs.
fn run_args<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut args = RUN.to_vec();
    args.extend(["--out", out, "--epochs", epochs]);
    args
}

use common::cli as postergrad;

/// Starts `postergrad train` and returns once it has begun training (its
/// "data:" line is out, so the Ctrl-C handler is installed).
fn start(args: &[&str]) -> (Child, BufReader<std::process::ChildStdout>, String) {
    start_until(args, "data:")
}

/// Starts `postergrad train` and returns once a line starting with `prefix`
/// is out (or the output ended).
fn start_until(
    args: &[&str],
    prefix: &str,
) -> (Child, BufReader<std::process::ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen += &line;
        if line.starts_with(prefix) {
            break;
        }
    }
    (child, out, seen)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

/// A delay in [lo, hi) ms that differs from run to run (printed, so that a
/// failure can be replayed).
fn random_ms(lo: u64, hi: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let ms = lo + (nanos ^ (nanos >> 13)) % (hi - lo);
    println!("delay: {ms} ms");
    ms
}

/// The uninterrupted run every interrupted one must reproduce bit for bit,
/// and how long it trained after its first epoch (in ms, from the "epoch
/// 1/4" line to the end): kills land at random moments within that.
/// Start-up and the first epoch are left out: opening the device and
/// compiling pipelines (the driver caches them for the next run) are most of
/// a short run on a fast GPU, and a kill timed by the whole run would land
/// after its last step.
fn reference_run(dir: &Path) -> (PathBuf, u64) {
    let out = dir.join("reference");
    let o = out.display().to_string();
    let args = run_args(&o, "4");
    let (mut child, mut stdout, mut text) = start_until(&args, FIRST_EPOCH);
    let rest = std::time::Instant::now();
    stdout.read_to_string(&mut text).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    (out, rest.elapsed().as_millis() as u64)
}

/// The line a training run prints after its first epoch.
const FIRST_EPOCH: &str = "epoch  1/";

/// Same tensors, bit for bit, and the same losses in history.csv.
fn assert_same_run(a: &Path, b: &Path) {
    let (ca, cb) = (
        Checkpoint::load(&a.join("model.safetensors")).unwrap(),
        Checkpoint::load(&b.join("model.safetensors")).unwrap(),
    );
    assert_eq!(ca.info.step, cb.info.step);
    assert_eq!(ca.names(), cb.names());
    for name in ca.names() {
        let (ta, tb) = (ca.get(name).unwrap(), cb.get(name).unwrap());
        assert_eq!(ta.0, tb.0, "{name}");
        let same =
            ta.1.iter()
                .zip(tb.1)
                .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{name} differs from the uninterrupted run");
    }
    let losses = |d: &Path| -> Vec<String> {
        std::fs::read_to_string(d.join("history.csv"))
            .unwrap()
            .lines()
            .map(|l| l.split(',').take(8).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(losses(a), losses(b));
}

#[test]
fn ctrl_c_stops_after_the_step_saves_and_resumes_to_the_uninterrupted_weights() {
    let dir = tmp("ctrlc");
    let (reference, ms) = reference_run(&dir);
    let out = dir.join("stopped");
    let o = out.display().to_string();
    let args = run_args(&o, "4");
    // in epochs 2 to 4, whatever the adapter's speed
    let (mut child, mut stdout, mut text) = start_until(&args, FIRST_EPOCH);
    std::thread::sleep(std::time::Duration::from_millis(random_ms(
        0,
        (ms / 2).max(1),
    )));
    signal(&child, "-INT");
    stdout.read_to_string(&mut text).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{text}");
    assert_has(
        &text,
        &[
            "stopped by Ctrl-C after step",
            &format!("the state is saved in {o}/train_state.safetensors"),
            "continue exactly where it stopped with:",
        ],
    );
    let command = text
        .lines()
        .skip_while(|l| !l.starts_with("continue exactly"))
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    assert!(
        command.contains(&format!(" --out {o} ")) && command.ends_with(" --resume"),
        "{command}"
    );
    let resume: Vec<&str> = command.split(' ').skip(1).collect();
    let (code, stdout, stderr) = postergrad(&resume);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("resuming"), "{stdout}");
    assert_same_run(&reference, &out);
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_broken_checkpoint() {
    let dir = tmp("sigkill");
    let (reference, ms) = reference_run(&dir);
    let out = dir.join("killed");
    let o = out.display().to_string();
    let state = out.join("train_state.safetensors");
    // Resume what the last kill left, or start afresh when it left nothing.
    let continue_run = || {
        let mut args = run_args(&o, "4");
        args.push(if state.exists() {
            "--resume"
        } else {
            "--force"
        });
        args
    };
    for _ in 0..4 {
        let (mut child, _stdout, _) = start(&continue_run());
        std::thread::sleep(std::time::Duration::from_millis(random_ms(
            ms / 10,
            (ms / 2).max(ms / 10 + 1),
        )));
        signal(&child, "-KILL");
        child.wait().unwrap();
        // Whatever the moment: each file is the old or the new one, whole.
        for name in ["model.safetensors", "train_state.safetensors"] {
            let path = out.join(name);
            if path.exists() {
                let c = Checkpoint::load(&path).unwrap_or_else(|e| panic!("{e}"));
                println!("{name}: epoch {} step {}", c.info.epoch, c.info.step);
            }
        }
    }
    let (code, stdout, stderr) = postergrad(&continue_run());
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_same_run(&reference, &out);
}

#[test]
fn a_killed_runs_temporaries_are_cleared_when_it_resumes() {
    let dir = tmp("stale");
    let out = dir.join("run");
    let o = out.display().to_string();
    assert_eq!(postergrad(&run_args(&o, "1")).0, Some(0));
    let stale = out.join(".model.safetensors.tmp-999999");
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let mut resume = run_args(&o, "2");
    resume.push("--resume");
    let (code, stdout, stderr) = postergrad(&resume);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stale.exists());
}

// ---------------------------------------------------------------------------
// Bad input through the command line: each error names the culprit and the
// fix, the exit status is 1, nothing panics.

fn expect_cli_error(args: &[&str], needles: &[&str]) {
    let (code, stdout, stderr) = postergrad(args);
    // 2: a setting refused while the command line is parsed; 1: the rest
    assert!(
        matches!(code, Some(1) | Some(2)),
        "{args:?} exited {code:?}: {stdout}{stderr}"
    );
    assert!(stderr.contains("error: "), "{args:?}: {stderr}");
    assert_has(&stderr, needles);
}

fn dataset(dir: &Path, csv: &str) -> String {
    std::fs::create_dir_all(dir.join("Images")).unwrap();
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    dir.display().to_string()
}

#[test]
fn bad_datasets_are_errors_naming_the_file_the_line_and_the_fix() {
    let dir = tmp("cli-data");
    let missing = dir.join("nowhere").display().to_string();
    expect_cli_error(
        &["train", "--data", &missing],
        &[
            "nowhere: is not a directory",
            "--data wants a directory holding train.csv and Images/",
        ],
    );
    let no_csv = dir.join("no-csv");
    std::fs::create_dir_all(&no_csv).unwrap();
    expect_cli_error(
        &["train", "--data", &no_csv.display().to_string()],
        &["no-csv/train.csv: not found", "the tutorial's layout"],
    );
    for (name, csv, needles) in [
        (
            "empty",
            "",
            vec!["train.csv: is empty", "needs a header line `Id,Genre"],
        ),
        (
            "no-id",
            "Name,Genre,Drama\nx,\"['Drama']\",1\n",
            vec![
                "train.csv, line 1",
                "no `Id` column (columns: Name, Genre, Drama)",
            ],
        ),
        (
            "columns",
            "Id,Genre,Drama,Comedy\na,['Drama', 'Comedy'],1,1\n",
            vec!["train.csv, line 2", "5 columns, but the header has 4"],
        ),
        (
            "label",
            "Id,Genre,Drama\na,\"['Drama']\",yes\n",
            vec![
                "train.csv, line 2",
                "genre `Drama` is `yes`",
                "expected 0 or 1",
            ],
        ),
        (
            "dupes",
            "Id,Genre,Drama\na,\"['Drama']\",1\na,\"[]\",0\n",
            vec!["Id a appears on lines 2 and 3 with different labels"],
        ),
        (
            "no-images",
            "Id,Genre,Drama\na,\"['Drama']\",1\nb,\"[]\",0\n",
            vec!["nor any of the 2 images", "Images/<Id>.jpg"],
        ),
    ] {
        let d = dataset(&dir.join(name), csv);
        expect_cli_error(&["train", "--data", &d], &needles);
    }
}

#[test]
fn bad_settings_are_errors_naming_the_option() {
    let dir = tmp("cli-settings");
    let o = dir.join("run").display().to_string();
    for (args, needles) in [
        (
            vec!["train", "--size", "30"],
            vec![
                "--size 30: model poster collapses",
                "the smallest input size that works is 46",
            ],
        ),
        (
            vec!["train", "--batch", "0"],
            vec!["invalid value '0' for '--batch <BATCH>': must be at least 1"],
        ),
        (
            vec!["train", "--epochs", "0"],
            vec!["invalid value '0' for '--epochs <EPOCHS>': must be at least 1"],
        ),
        (
            vec!["train", "--size", "2000", "--batch", "64"],
            vec![
                "--batch 64: at --size 2000 the output of `batch_normalization` ([64, 16, 1998, \
                 1998]) needs 16351 MB, more than the",
                "the adapter allows per buffer; use --batch",
            ],
        ),
        (
            vec!["train", "--model", "mlp", "--size", "3000"],
            vec![
                "--size 3000: layer `dense` of model mlp has 1728000064 parameters (6912 MB)",
                "use a smaller --size",
            ],
        ),
        (
            vec!["train", "--lr", "-0.1"],
            vec!["invalid value '-0.1' for '--lr <LR>': must be a positive number (Adam's step size; the tutorial's is 1e-3)"],
        ),
        (
            vec!["train", "--lr", "NaN"],
            vec!["invalid value 'NaN' for '--lr <LR>': must be a positive number"],
        ),
        (
            vec!["train", "--lr", "inf"],
            vec!["invalid value 'inf' for '--lr <LR>': must be a positive number"],
        ),
        (
            vec!["train", "--workers", "0"],
            vec!["invalid value '0' for '--workers <WORKERS>': must be at least 1"],
        ),
        (
            vec!["train", "--size", "abc"],
            vec!["invalid value 'abc' for '--size <SIZE>': must be a whole number of at least 1"],
        ),
        (
            vec!["evaluate", "--checkpoint", "x.safetensors", "--limit", "0"],
            vec!["invalid value '0' for '--limit <LIMIT>': must be at least 1"],
        ),
        (
            vec!["predict", "--checkpoint", "x.safetensors", "--top", "0", "a.jpg"],
            vec!["invalid value '0' for '--top <TOP>': must be at least 1"],
        ),
        (
            vec!["profile", "--steps", "0"],
            vec!["invalid value '0' for '--steps <STEPS>': must be at least 1"],
        ),
        (
            vec!["info", "--weight-chunk", "8"],
            vec!["invalid value '8' for '--weight-chunk <PIXELS>': '8' is not a pixel count in 64 ..= 65536"],
        ),
        (
            vec!["plot", "nowhere"],
            vec!["nowhere: holds no history.csv: `plot` wants a run directory written by `train`"],
        ),
        (
            vec!["train", "--val-split", "0"],
            vec!["invalid value '0' for '--val-split <VAL_SPLIT>': must be between 0 and 1, exclusive"],
        ),
        (
            vec!["train", "--val-split", "1.5"],
            vec!["invalid value '1.5' for '--val-split <VAL_SPLIT>': must be between 0 and 1, exclusive"],
        ),
        (
            vec!["train", "--limit", "5000"],
            vec![
                "--limit 5000: exceeds the 1200 posters",
                "leave --limit out to use them all",
            ],
        ),
        (
            vec!["train", "--out", &o, "--resume"],
            vec!["--resume", "train_state.safetensors does not exist"],
        ),
    ] {
        expect_cli_error(&args, &needles);
    }
    // An existing run is never silently overwritten.
    let args = run_args(&o, "1");
    assert_eq!(postergrad(&args).0, Some(0));
    let before = std::fs::read(dir.join("run/model.safetensors")).unwrap();
    expect_cli_error(
        &args,
        &[
            "already holds a run",
            "pass --resume to continue it, --force",
        ],
    );
    let mut other = args.clone();
    other.extend(["--seed", "7", "--resume"]);
    expect_cli_error(
        &other,
        &["was started with other settings: seed: saved 0, now 7"],
    );
    assert_eq!(
        std::fs::read(dir.join("run/model.safetensors")).unwrap(),
        before
    );
}

/// `src` rewritten: its metadata patched by `meta`, tensors dropped by `keep`.
fn rewrite_checkpoint(src: &Path, dst: &Path, meta: &[(&str, &str)], keep: impl Fn(&str) -> bool) {
    let bytes = std::fs::read(src).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut metadata = header.metadata().clone().unwrap();
    for (k, v) in meta {
        metadata.insert(k.to_string(), v.to_string());
    }
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(n, _)| keep(n)).collect();
    safetensors::serialize_to_file(tensors, Some(metadata), dst).unwrap();
}

#[test]
fn bad_checkpoints_and_predict_inputs_say_what_differs() {
    let dir = tmp("cli-ckpt");
    let o = dir.join("run").display().to_string();
    let args = run_args(&o, "1");
    assert_eq!(postergrad(&args).0, Some(0));
    let good = dir.join("run/model.safetensors");
    let poster = dir.join("poster.png");
    image::RgbImage::from_pixel(30, 45, image::Rgb([9, 9, 9]))
        .save(&poster)
        .unwrap();
    let p = poster.display().to_string();
    let predict = |ckpt: &Path, needles: &[&str]| {
        expect_cli_error(
            &["predict", "--checkpoint", &ckpt.display().to_string(), &p],
            needles,
        )
    };
    predict(
        &dir.join("missing.safetensors"),
        &[
            "missing.safetensors: not found",
            "pass the model.safetensors of a finished run",
        ],
    );
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    predict(
        &truncated,
        &["truncated.safetensors: not a safetensors file"],
    );
    let other_size = dir.join("size.safetensors");
    rewrite_checkpoint(&good, &other_size, &[("size", "64")], |_| true);
    predict(
        &other_size,
        &["tensor `dense.kernel` has shape [6348, 64], the model needs [12288, 64]"],
    );
    let other_model = dir.join("model.safetensors");
    rewrite_checkpoint(&good, &other_model, &[("model", "poster")], |_| true);
    predict(
        &other_model,
        &["has no tensor `conv2d.kernel` (does it belong to another model?)"],
    );
    let holes = dir.join("holes.safetensors");
    rewrite_checkpoint(&good, &holes, &[], |n| n != "dense_1.bias");
    predict(&holes, &["has no tensor `dense_1.bias`"]);
    // predict on something that is not an image; the good posters still print.
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a poster").unwrap();
    let (code, stdout, stderr) = postergrad(&[
        "predict",
        "--checkpoint",
        &good.display().to_string(),
        &text.display().to_string(),
        &p,
    ]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert_has(&stderr, &["notes.txt: not an image postergrad can read"]);
    assert!(stdout.contains("poster.png"), "{stdout}");
}

#[test]
fn nonfinite_count_counts_exactly_the_nan_and_inf_values() {
    use postergrad::ops::nonfinite::{cpu, Counters};
    let gpu = Gpu::new().unwrap();
    let mut x: Vec<f32> = (0..100_000).map(|i| (i as f32 - 5e4) * 1e33).collect();
    // Edge values that are finite: the largest float, a subnormal, −0.
    x[1] = f32::MAX;
    x[2] = f32::MIN_POSITIVE / 4.0;
    x[3] = -0.0;
    for (i, v) in [
        (10, f32::NAN),
        (20, f32::INFINITY),
        (99_999, f32::NEG_INFINITY),
    ] {
        x[i] = v;
    }
    let want = cpu::nonfinite_count(&x);
    assert_eq!(want, 3);
    let t = postergrad::Tensor::from_slice(&gpu, [x.len()], &x).unwrap();
    let finite = postergrad::Tensor::from_slice(&gpu, [3], &[1.0, f32::MAX, -0.0]).unwrap();
    // four elements per texel fetch: a NaN alone in the last, partial texel
    let tail = [1.0, 2.0, 3.0, 4.0, f32::NAN];
    let tail = postergrad::Tensor::from_slice(&gpu, [5], &tail).unwrap();
    let counters = Counters::new(&gpu, 3).unwrap();
    counters.count(&gpu, &t, 1).unwrap();
    counters.count(&gpu, &finite, 2).unwrap();
    counters.count(&gpu, &tail, 3).unwrap();
    assert_eq!(counters.read(&gpu).unwrap(), vec![want + 1, want, 0, 1]);
    counters.clear(&gpu);
    assert_eq!(counters.read(&gpu).unwrap(), vec![0, 0, 0, 0]);
    assert!(counters.count(&gpu, &t, 4).is_err());
}
