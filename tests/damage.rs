//! Damaged images and datasets with too few usable posters: each kind of
//! damage is named ("a damaged or truncated JPEG file (…)"), a poster is
//! never trained on with rows filled in, and no run starts — nor writes a
//! model — without posters to learn from. docs/reliability.md lists the
//! messages.

mod common;

use std::path::{Path, PathBuf};

use common::{cli, poster_dir, tmp};
use postergrad::posters::{check_image_file, load_image_file};

/// Up to `n` real posters (../shared/posters), else none.
fn real_posters(n: usize) -> Vec<PathBuf> {
    let dir = Path::new("../shared/posters/Images");
    let Ok(entries) = std::fs::read_dir(dir) else {
        eprintln!("../shared/posters not found: real-poster cases skipped");
        return vec![];
    };
    let mut all: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    all.sort();
    all.into_iter().take(n).collect()
}

/// A 120×180 poster of seeded noise and shapes (enough entropy-coded data
/// that every cut lands inside it), as a baseline or progressive JPEG.
fn noisy_jpeg(progressive: bool) -> Vec<u8> {
    let (w, h) = (120u16, 180u16);
    let mut rng = postergrad::rng::Rng::new(11);
    let pixels: Vec<u8> = (0..w as usize * h as usize * 3)
        .map(|i| ((i % 97) as f64 * 2.0 + rng.uniform() * 60.0) as u8)
        .collect();
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
    enc.set_progressive(progressive);
    enc.encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn noisy_png() -> Vec<u8> {
    let mut rng = postergrad::rng::Rng::new(12);
    let img = image::RgbImage::from_fn(90, 135, |_, _| {
        image::Rgb([
            (rng.uniform() * 255.0) as u8,
            (rng.uniform() * 255.0) as u8,
            (rng.uniform() * 255.0) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Loads `bytes` saved as `name` both ways a poster is read (the scan
/// before a run, the decode during it); returns the decode's error.
fn both_refuse(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let scan = check_image_file(&path);
    let load = load_image_file(&path, 16);
    assert!(scan.is_err(), "{name}: the scan passed it");
    let err = load.expect_err(name);
    assert_eq!(scan.unwrap_err(), err, "{name}");
    err
}

#[test]
fn jpegs_cut_anywhere_are_damaged_not_grey() {
    let dir = tmp("cuts");
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("baseline.jpg".into(), noisy_jpeg(false)),
        ("progressive.jpg".into(), noisy_jpeg(true)),
    ];
    for p in real_posters(6) {
        files.push((
            p.file_name().unwrap().to_string_lossy().into(),
            std::fs::read(&p).unwrap(),
        ));
    }
    for (name, bytes) in &files {
        // whole, it loads
        std::fs::write(dir.join(name), bytes).unwrap();
        load_image_file(&dir.join(name), 16).unwrap_or_else(|e| panic!("{name}: {e}"));
        let n = bytes.len();
        for (what, cut) in [
            ("10 %", n / 10),
            ("a third", n / 3),
            ("half", n / 2),
            ("all but 2 bytes", n - 2),
            ("all but 1 byte", n - 1),
        ] {
            let err = both_refuse(&dir, name, &bytes[..cut]);
            assert!(
                err.starts_with("a damaged or truncated JPEG file (it ends at byte ")
                    && err.ends_with("; download the poster again"),
                "{name} cut to {what}: {err}"
            );
        }
    }
    // the exact words, for the docs
    let b = &files[0].1;
    assert_eq!(
        both_refuse(&dir, "third.jpg", &b[..b.len() / 3]),
        format!(
            "a damaged or truncated JPEG file (it ends at byte {} inside its image data (scan 1), \
             before the end-of-image marker); download the poster again",
            b.len() / 3
        )
    );
}

/// The byte offsets of a JPEG's SOS markers.
fn scans(b: &[u8]) -> Vec<usize> {
    (0..b.len() - 1)
        .filter(|&i| b[i] == 0xFF && b[i + 1] == 0xDA)
        .collect()
}

#[test]
fn jpegs_missing_scans_or_holding_stray_markers_are_damaged() {
    let dir = tmp("scans");
    // A progressive file without its last scan (cut out, EOI kept): the
    // decoder would render the coarse scans; the check counts coefficients.
    let p = noisy_jpeg(true);
    let s = scans(&p);
    assert!(s.len() >= 4, "{} scans", s.len());
    let last = *s.last().unwrap();
    let mut missing = p[..last].to_vec();
    missing.extend_from_slice(&[0xFF, 0xD9]);
    let err = both_refuse(&dir, "missing.jpg", &missing);
    assert!(
        err.starts_with("a damaged or truncated JPEG file (missing scans: component "),
        "{err}"
    );
    // A baseline file whose only scan is gone.
    let b = noisy_jpeg(false);
    let mut noscan = b[..scans(&b)[0]].to_vec();
    noscan.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(
        both_refuse(&dir, "noscan.jpg", &noscan),
        "a damaged or truncated JPEG file (no image data (no scan)); download the poster again"
    );
    // A marker no encoder writes inside image data (0xFF 0xC8).
    let mut stray = b.clone();
    let at = b.len() / 2;
    stray[at] = 0xFF;
    stray[at + 1] = 0xC8;
    assert_eq!(
        both_refuse(&dir, "stray.jpg", &stray),
        format!(
            "a damaged or truncated JPEG file (a marker 0xc8 at byte {at} inside its image \
             data); download the poster again"
        )
    );
}

#[test]
fn flipped_bytes_are_caught_by_the_strict_decoder_or_decode() {
    // JPEG carries no checksum: flipped entropy-coded bytes that still
    // form valid codes decode to a changed poster. Those that break the
    // codes are errors (the default decoder would stop and leave grey
    // rows). Never a panic; the share caught is in docs/reliability.md.
    let dir = tmp("flips");
    let mut files = vec![noisy_jpeg(false)];
    files.extend(real_posters(4).iter().map(|p| std::fs::read(p).unwrap()));
    let (mut caught, mut total) = (0, 0);
    for bytes in &files {
        for k in 0..8 {
            let mut c = bytes.clone();
            let mid = bytes.len() / 2 + k * 37;
            for x in &mut c[mid..mid + 16] {
                *x ^= 0x5A;
            }
            let path = dir.join("flip.jpg");
            std::fs::write(&path, &c).unwrap();
            total += 1;
            if let Err(e) = load_image_file(&path, 16) {
                assert!(e.starts_with("a damaged"), "{e}");
                assert!(e.ends_with("; download the poster again"), "{e}");
                caught += 1;
            }
        }
    }
    eprintln!("flipped 16-byte runs caught: {caught} of {total}");
    assert!(caught >= 1, "none of {total} caught");
}

#[test]
fn pngs_cut_or_flipped_are_damaged() {
    let dir = tmp("png");
    let p = noisy_png();
    let n = p.len();
    for cut in [n / 10, n / 3, n / 2, n - 4, n - 1] {
        let err = both_refuse(&dir, "cut.png", &p[..cut]);
        assert!(
            err.starts_with("a damaged or truncated PNG file (")
                && err.ends_with("; download the poster again"),
            "cut at {cut}: {err}"
        );
    }
    // The chunk CRCs catch any flipped byte.
    let mut flipped = p.clone();
    flipped[n / 2] ^= 0x01;
    let err = both_refuse(&dir, "flip.png", &flipped);
    assert!(err.contains("fails its checksum"), "{err}");
    assert_eq!(
        both_refuse(&dir, "all-but-iend.png", &p[..n - 12]),
        format!(
            "a damaged or truncated PNG file (it ends at byte {} without its IEND chunk); \
             download the poster again",
            n - 12
        )
    );
}

#[test]
fn a_dataset_of_unreadable_images_is_refused_and_writes_nothing() {
    let dir = tmp("allbad");
    std::fs::create_dir_all(dir.join("Images")).unwrap();
    let mut csv = "Id,Genre,Drama,Comedy\n".to_string();
    for i in 0..40 {
        csv += &format!("p{i:02},\"['Drama']\",1,0\n");
        std::fs::write(dir.join(format!("Images/p{i:02}.jpg")), b"not a jpeg\n").unwrap();
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    let out = dir.join("run");
    let (d, o) = (dir.display().to_string(), out.display().to_string());
    let (code, _, err) = cli(&["train", "--data", &d, "--size", "46", "--out", &o]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: --data {d}: none of the 40 posters train.csv lists has a usable image, so \
             there is nothing to train on; the first: poster p00 ({d}/Images/p00.jpg): not an \
             image postergrad can read (its first bytes are neither JPEG nor PNG: [6e, 6f, 74, \
             20]); convert it to JPEG or PNG; poster p01"
        )),
        "{err}"
    );
    assert!(
        err.contains("… and 30 more unusable images, skipped"),
        "{err}"
    );
    assert!(!out.exists(), "a run directory was made");
}

#[test]
fn too_few_usable_posters_for_one_batch_is_refused() {
    let dir = tmp("fewgood");
    let ids = poster_dir(&dir, 40, 46);
    for id in &ids[4..] {
        let path = dir.join(format!("Images/{id}.jpg"));
        let b = std::fs::read(&path).unwrap();
        std::fs::write(&path, &b[..b.len() / 2]).unwrap();
    }
    let o = dir.join("run").display().to_string();
    let d = dir.display().to_string();
    let (code, _, err) = cli(&[
        "train", "--data", &d, "--model", "mlp", "--size", "46", "--out", &o,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "error: --batch 32: only 3 usable posters remain for training (40 listed, 36 \
             unusable, 1 held out for validation), fewer than one batch; use --batch 3 or less, \
             or more posters"
        ),
        "{err}"
    );
    assert!(
        err.contains("a damaged or truncated JPEG file (it ends at byte"),
        "{err}"
    );
    assert!(!dir.join("run/model.safetensors").exists());
    // With a batch that fits, the 4 usable posters train.
    let (code, out, err) = cli(&[
        "train", "--data", &d, "--model", "mlp", "--size", "46", "--out", &o, "--batch", "3",
        "--epochs", "1",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("3 train / 1 validation posters"), "{out}");
}

/// A poster whose structure is whole but whose entropy-coded data breaks
/// the decoder's codes: the second half of its scan becomes stuffed 0xFF
/// bytes (0xFF 0x00), a run of one-bits that no Huffman table codes. The
/// scan before a run passes it; decoding fails.
fn undecodable(bytes: &[u8]) -> Vec<u8> {
    let sos = scans(bytes)[0];
    let data = sos + 2 + ((bytes[sos + 2] as usize) << 8 | bytes[sos + 3] as usize);
    let end = bytes.len() - 2; // FF D9
    let mut c = bytes.to_vec();
    let from = data + (end - data) / 2;
    for (k, x) in c[from..end].iter_mut().enumerate() {
        *x = if k % 2 == 0 { 0xFF } else { 0x00 };
    }
    if (end - from) % 2 == 1 {
        c[end - 1] = 0x00; // keep the last 0xFF stuffed
    }
    let dir = tmp("undecodable");
    let path = dir.join("x.jpg");
    std::fs::write(&path, &c).unwrap();
    assert_eq!(check_image_file(&path), Ok(()));
    assert!(load_image_file(&path, 16).is_err());
    c
}

#[test]
fn an_epoch_or_a_validation_with_no_decodable_poster_stops_before_saving() {
    let gpu = postergrad::Gpu::new().unwrap();
    let dir = tmp("nodecode");
    let ids = poster_dir(&dir, 24, 46);
    let config = postergrad::train::TrainConfig {
        data: Some(dir.clone()),
        model: postergrad::nn::ModelKind::Mlp,
        size: Some(46),
        epochs: 1,
        batch: 4,
        workers: 1,
        out: dir.join("run"),
        ..Default::default()
    };
    // The validation posters break only when decoded.
    let set = postergrad::posters::PosterSet::open(&dir).unwrap();
    let (_, val) = set.split(config.seed, None, config.val_split).unwrap();
    for &i in &val {
        let path = dir.join(format!("Images/{}.jpg", ids[i]));
        let bad = undecodable(&std::fs::read(&path).unwrap());
        std::fs::write(&path, bad).unwrap();
    }
    let err = postergrad::train::train(&gpu, &config, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "epoch 1: no validation poster could be scored: every image it reached failed to \
             decode ({} failures so far; the first: poster ",
            val.len()
        )) && err.contains("nothing of this epoch was saved"),
        "{err}"
    );
    assert!(!dir.join("run/model.safetensors").exists());
    // Every poster breaks when decoded: the first epoch trains on none.
    for id in &ids {
        let path = dir.join(format!("Images/{id}.jpg"));
        let b = std::fs::read(&path).unwrap();
        if load_image_file(&path, 16).is_ok() {
            std::fs::write(&path, undecodable(&b)).unwrap();
        }
    }
    let err = postergrad::train::train(
        &gpu,
        &postergrad::train::TrainConfig {
            force: true,
            ..config
        },
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("epoch 1 trained on no poster: every image it reached failed to decode"),
        "{err}"
    );
    assert!(!dir.join("run/model.safetensors").exists());
}

#[test]
fn evaluate_and_predict_refuse_damaged_posters() {
    let dir = tmp("evalbad");
    let ids = poster_dir(&dir, 40, 46);
    let (d, o) = (
        dir.display().to_string(),
        dir.join("run").display().to_string(),
    );
    let (code, _, err) = cli(&[
        "train", "--data", &d, "--model", "mlp", "--size", "46", "--epochs", "1", "--batch", "8",
        "--out", &o,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let ckpt = dir.join("run/model.safetensors").display().to_string();
    for id in &ids {
        let path = dir.join(format!("Images/{id}.jpg"));
        let b = std::fs::read(&path).unwrap();
        std::fs::write(&path, &b[..b.len() / 3]).unwrap();
    }
    let (code, out, err) = cli(&["evaluate", "--checkpoint", &ckpt, "--data", &d]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains(&format!(
            "none of the 40 posters could be read, so there is nothing to evaluate; the first: \
             poster {} ({d}/Images/{}.jpg): a damaged or truncated JPEG file (",
            ids[0], ids[0]
        )),
        "{err}"
    );
    assert!(!out.contains("bce"), "metrics printed: {out}");
    let poster = dir
        .join(format!("Images/{}.jpg", ids[0]))
        .display()
        .to_string();
    let (code, _, err) = cli(&["predict", "--checkpoint", &ckpt, &poster]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "error: {poster}: a damaged or truncated JPEG file (a segment at byte "
        )),
        "{err}"
    );
}
