//! Reliability: every bad input named with its fix, no lost work, numerical
//! faults caught. docs/reliability.md lists each case with the error a user
//! sees; the tests here assert those texts.

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
fn save_flat<P: image::Pixel<Subpixel: image::Primitive>>(dir: &Path, name: &str, pixel: P) -> PathBuf
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
    assert_color(&save_flat(&dir, "rgb.png", Rgb([200u8, 40, 10])), [200, 40, 10], 0);
    assert_color(&save_flat(&dir, "rgb.jpg", Rgb([200u8, 40, 10])), [200, 40, 10], 3);
    assert_color(&save_flat(&dir, "gray.jpg", Luma([90u8])), [90, 90, 90], 2);
    assert_color(&save_flat(&dir, "gray.png", Luma([90u8])), [90, 90, 90], 0);
    assert_color(&save_flat(&dir, "graya.png", LumaA([90u8, 255])), [90, 90, 90], 0);
    assert_color(&save_flat(&dir, "rgba.png", Rgba([200u8, 40, 10, 128])), [200, 40, 10], 0);
    assert_color(&save_flat(&dir, "rgb16.png", Rgb([51400u16, 10280, 2570])), [200, 40, 10], 0);
    assert_color(&save_flat(&dir, "gray16.png", Luma([23130u16])), [90, 90, 90], 0);
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
    assert_has(&load_image_file(&empty, 8).unwrap_err(), &["empty (0 bytes)", "download the poster again"]);
    let text = dir.join("text.jpg");
    std::fs::write(&text, b"<html>404 Not Found</html>").unwrap();
    assert_has(
        &load_image_file(&text, 8).unwrap_err(),
        &["not an image", "neither JPEG nor PNG", "convert it to JPEG or PNG"],
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
        &["a damaged or truncated JPEG file", "download the poster again"],
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
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
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
            &format!("more than the {} MB a poster may use", MAX_DECODED_BYTES >> 20),
            "shrink it first",
        ],
    );
    assert!(before.elapsed().as_secs_f64() < 1.0, "decoded before refusing");
}

// ---------------------------------------------------------------------------
// Numerical faults and lost devices: the run stops, its checkpoint survives.

use postergrad::checkpoint::Checkpoint;
use postergrad::nn::ModelKind;
use postergrad::posters::SyntheticConfig;
use postergrad::train::{train, Event, TrainConfig};
use postergrad::{Error, Gpu};

/// An MLP on 40 synthetic posters at 46×46: one batch per epoch.
fn one_batch_epochs(out: PathBuf) -> TrainConfig {
    TrainConfig {
        synthetic: SyntheticConfig { count: 40, seed: 3 },
        model: ModelKind::Mlp,
        size: Some(46),
        epochs: 3,
        batch: 64,
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
    assert!(matches!(&err, Error::Stopped { cause, .. } if matches!(**cause, Error::NonFinite(_))), "{err:?}");
    let state = out.join("train_state.safetensors");
    assert_has(
        &err.to_string(),
        &[
            "training stopped at epoch 2, step 2 (batch 1 of 1)",
            "NaN or ±Inf in dense.kernel gradient (",
            "the first layer whose output is non-finite is `dense` (output [34, 64]",
            "The step was not applied. Lower --lr (now 1e38)",
            &format!("the last good checkpoint, {} (after epoch 1, step 1), is intact", state.display()),
        ],
    );
    let saved = Checkpoint::load(&state).unwrap();
    assert_eq!((saved.info.epoch, saved.info.step), (1, 1));
    let w = saved.tensor("dense.kernel", &[3 * 46 * 46, 64]).unwrap();
    assert!(w.iter().all(|v| v.is_finite()));
    assert!(w.iter().any(|v| v.abs() > 1e36), "step 1 did not take the huge step");
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
        &["training stopped at epoch 1, step 2 (batch 2 of 11)", "no checkpoint had been written yet"],
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
    assert_has(
        &text,
        &[
            "training stopped at epoch 2",
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
    assert_eq!(Checkpoint::load(&out.join("model.safetensors")).unwrap().info.epoch, 3);
}
