//! Helpers shared by the test files.

use postergrad::{Gpu, Precision};

/// The f64 device, or None (with a note) where the adapter has no SHADER_F64.
#[allow(dead_code)]
pub fn f64_gpu() -> Option<Gpu> {
    match Gpu::with_precision(Precision::F64) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}

/// A fresh, empty directory under the system's temp dir, unique to this
/// process and `name`.
#[allow(dead_code)]
pub fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("postergrad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `postergrad` binary: (exit code, stdout, stderr).
#[allow(dead_code)]
pub fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A dataset directory in the tutorial's layout: `count` synthetic posters
/// (seeded) saved as JPEGs of `size`×1.5`size` in `dir`/Images, and their
/// train.csv. Returns the poster Ids in file order.
#[allow(dead_code)]
pub fn poster_dir(dir: &std::path::Path, count: usize, size: usize) -> Vec<String> {
    use postergrad::posters::{PosterSet, SyntheticConfig};
    let set = PosterSet::synthetic(SyntheticConfig { count, seed: 5 });
    std::fs::create_dir_all(dir.join("Images")).unwrap();
    let mut csv = format!("Id,Genre,{}\n", set.genres.join(","));
    for (i, p) in set.posters.iter().enumerate() {
        let names: Vec<String> = set
            .genres
            .iter()
            .zip(&p.labels)
            .filter(|(_, &y)| y > 0.5)
            .map(|(g, _)| format!("'{g}'"))
            .collect();
        let labels: Vec<String> = p.labels.iter().map(|&y| (y as u8).to_string()).collect();
        csv += &format!("{},\"[{}]\",{}\n", p.id, names.join(", "), labels.join(","));
        let pixels = set.load_image(i, size).unwrap();
        let img = image::RgbImage::from_raw(size as u32, size as u32, pixels).unwrap();
        let img = image::imageops::resize(
            &img,
            size as u32,
            size as u32 * 3 / 2,
            image::imageops::FilterType::Triangle,
        );
        img.save(dir.join("Images").join(format!("{}.jpg", p.id)))
            .unwrap();
    }
    std::fs::write(dir.join("train.csv"), csv).unwrap();
    set.posters.iter().map(|p| p.id.clone()).collect()
}

/// A quick real training run for CLI tests: the MLP at 46×46 on 400
/// synthetic posters, batch 16, one decoding thread.
#[allow(dead_code)]
pub const QUICK_RUN: &[&str] = &[
    "train",
    "--model",
    "mlp",
    "--size",
    "46",
    "--limit",
    "400",
    "--batch",
    "16",
    "--workers",
    "1",
];
