//! What the timed-loop benches share: settings from the environment and a
//! best-of-N timer that waits for the GPU.

#![allow(dead_code)] // each bench uses its own subset

use postergrad::Gpu;
use std::time::Instant;

/// A numeric setting from the environment, or `default`.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The settings of the layer benches (conv, layers), from the environment.
pub struct Settings {
    /// `POSTERGRAD_BENCH_BATCH` (32).
    pub batch: usize,
    /// `POSTERGRAD_BENCH_SIZE`, the poster's side (350).
    pub size: usize,
    /// `POSTERGRAD_BENCH_REPS`, timed runs after the warm-up (2).
    pub reps: usize,
    /// `POSTERGRAD_BENCH_KERNELS`: only rows whose kernel contains it.
    pub only: String,
}

impl Settings {
    pub fn from_env() -> Settings {
        Settings {
            batch: env("POSTERGRAD_BENCH_BATCH", 32),
            size: env("POSTERGRAD_BENCH_SIZE", 350),
            reps: env("POSTERGRAD_BENCH_REPS", 2).max(1),
            only: std::env::var("POSTERGRAD_BENCH_KERNELS").unwrap_or_default(),
        }
    }
}

/// The start of a layer bench: None under `--list`; else the settings and
/// the adapter, both printed (`what`: "conv layers", "conv blocks"). With
/// `POSTERGRAD_BENCH_SHADER_DIR` set, the `*.wgsl` there replace the
/// embedded shaders of the same name, to time a modified kernel without
/// rebuilding.
pub fn start(what: &str) -> Option<(Settings, Gpu)> {
    if listing() {
        return None;
    }
    let settings = Settings::from_env();
    let gpu = Gpu::new().expect("a GPU adapter");
    println!("adapter: {}", gpu.adapter());
    // POSTERGRAD_WEIGHT_CHUNK=N sweeps conv2d's weight-gradient chunk.
    if let Ok(v) = std::env::var("POSTERGRAD_WEIGHT_CHUNK") {
        let weight_chunk = Some(v.trim().parse().expect("a pixel count"));
        gpu.set_tuning(postergrad::gpu::Tuning {
            weight_chunk,
            ..Default::default()
        })
        .expect("a weight chunk in 64 ..= 65536");
        println!("weight chunk: {v} output pixels");
    }
    if let Ok(dir) = std::env::var("POSTERGRAD_BENCH_SHADER_DIR") {
        let names = gpu
            .override_shaders_from_dir(std::path::Path::new(&dir))
            .expect("readable shader overrides");
        println!("shader overrides from {dir}: {}", names.join(", "));
    }
    println!(
        "poster model {what}, batch {}, input {}×{}, best of {} (mean in parentheses)\n",
        settings.batch, settings.size, settings.size, settings.reps
    );
    Some((settings, gpu))
}

/// `cargo test --benches` runs every bench with `--list`: nothing to list.
pub fn listing() -> bool {
    std::env::args().any(|a| a == "--list")
}

/// Runs `f` once to warm up (compile, allocate), then `reps` times, each
/// followed by a wait for the GPU; returns (best, mean) seconds.
pub fn time(gpu: &Gpu, reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    f();
    gpu.sync().unwrap();
    let mut best = f64::INFINITY;
    let mut total = 0.0;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        gpu.sync().unwrap();
        let s = t.elapsed().as_secs_f64();
        best = best.min(s);
        total += s;
    }
    (best, total / reps as f64)
}
