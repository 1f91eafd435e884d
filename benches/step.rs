//! The full poster-model training step (forward, BCE, backward, Adam) on
//! random data, and the start-up cost before it: from process start to the
//! end of the first step, minus what a warm step costs — the target
//! is at most 5 s.
//!
//!     cargo bench --bench step                       # 350×350, batch 32
//!     POSTERGRAD_BENCH_SIZE=128 POSTERGRAD_BENCH_REPS=3 cargo bench --bench step
//!
//! Not criterion: one step takes close to a minute at 350×350 on a CPU adapter.

use postergrad::nn::ModelKind;
use postergrad::profile::RandomStep;
use postergrad::Gpu;
use std::time::Instant;

mod common;
use common::{env, listing};

/// Seconds since this process started, from /proc (Linux); None elsewhere.
fn since_process_start() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // field 22 (starttime, clock ticks after boot) counts from after the ')'
    let after = &stat[stat.rfind(')')? + 2..];
    let ticks: f64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(uptime - ticks / 100.0) // USER_HZ is 100 on Linux
}

fn main() {
    if listing() {
        return;
    }
    let at_main = since_process_start();
    let t0 = Instant::now();
    let batch = env("POSTERGRAD_BENCH_BATCH", 32);
    let size = env("POSTERGRAD_BENCH_SIZE", 350);
    let reps = env("POSTERGRAD_BENCH_REPS", 1).max(1);
    let gpu = Gpu::new().expect("a GPU adapter");
    let t_gpu = t0.elapsed().as_secs_f64();
    let mut run =
        RandomStep::new(&gpu, ModelKind::Poster, size, batch, 25).expect("the poster model");
    let t_model = t0.elapsed().as_secs_f64();
    run.step(0).expect("the first step");
    let t_first = t0.elapsed().as_secs_f64();
    let pipelines = gpu.stats();
    let mut best = f64::INFINITY;
    for step in 1..=reps as u32 {
        let t = Instant::now();
        run.step(step).expect("a step");
        best = best.min(t.elapsed().as_secs_f64());
    }
    let before_main = at_main.unwrap_or(0.0);
    println!("adapter: {}", gpu.adapter());
    println!("poster model, {size}×{size}, batch {batch}; warm step: best of {reps}\n");
    println!("| phase | s |\n|---|---|");
    match at_main {
        Some(s) => println!("| process start → main | {s:.3} |"),
        None => println!("| process start → main | (no /proc: not counted) |"),
    }
    println!("| open the adapter (`Gpu::new`) | {t_gpu:.3} |");
    println!(
        "| build the model and optimizer, upload the batch | {:.3} |",
        t_model - t_gpu
    );
    println!(
        "| first step (compiles every pipeline on first use) | {:.3} |",
        t_first - t_model
    );
    println!("| warm step | {best:.3} |");
    let startup = before_main + t_first - best;
    println!(
        "\nstart-up: {startup:.2} s from process start to the end of the first step, beyond a warm step (target ≤ 5 s)"
    );
    println!(
        "warm step: {:.1} ms/sample; {} dispatches, {} buffers created by the end of step 1",
        best * 1e3 / batch as f64,
        pipelines.dispatches,
        pipelines.buffers_created
    );
}
