//! The data loader on the real posters: posters per second from JPEG on disk
//! to a GPU-ready batch (decoded, resized, [0,1] floats in CHW order, labels),
//! with 1, 2 and the default number of decoding threads, and from the u8
//! cache on a second pass.
//!
//!     cargo bench --bench loader                      # ../shared/posters, 128×128
//!     POSTERGRAD_BENCH_DATA=DIR POSTERGRAD_BENCH_SIZE=350 POSTERGRAD_BENCH_POSTERS=640 cargo bench --bench loader
//!
//! Skips (with a note) when the dataset is not there. Compare with the GPU's
//! appetite: a training step takes `ms/sample` from `cargo bench --bench step`;
//! the loader keeps ahead when its posters/s exceed 1000 / that.

use postergrad::loader::{batches, ImageCache, Loader};
use postergrad::posters::PosterSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

mod common;
use common::{env, listing};

fn main() {
    if listing() {
        return;
    }
    let dir = std::env::var("POSTERGRAD_BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/posters"))
        });
    if !dir.join("train.csv").is_file() {
        println!(
            "skipped: no dataset at {} (set POSTERGRAD_BENCH_DATA)",
            dir.display()
        );
        return;
    }
    let size = env("POSTERGRAD_BENCH_SIZE", 128);
    let batch = env("POSTERGRAD_BENCH_BATCH", 32);
    let set = Arc::new(PosterSet::open(&dir).expect("the dataset"));
    let posters = env("POSTERGRAD_BENCH_POSTERS", 640).min(set.posters.len());
    let rows: Vec<usize> = (0..posters).collect();
    println!(
        "{} posters of {} at {size}×{size}, batch {batch}\n",
        posters,
        dir.display()
    );
    println!("| source | threads | posters/s | ms/poster |\n|---|---|---|---|");
    let default = Loader::default_workers();
    let mut threads = vec![1, 2, default];
    threads.dedup();
    for &workers in &threads {
        // a fresh, disabled cache: every poster is decoded from its JPEG
        let cache = Arc::new(ImageCache::new(set.posters.len(), size, 0));
        let rate = pass(&set, &cache, &rows, size, batch, workers);
        println!(
            "| JPEG → batch | {workers} | {rate:.0} | {:.2} |",
            1e3 / rate
        );
    }
    let cache = Arc::new(ImageCache::new(set.posters.len(), size, u64::MAX));
    pass(&set, &cache, &rows, size, batch, default); // fills the cache
    let rate = pass(&set, &cache, &rows, size, batch, default);
    println!(
        "| u8 cache → batch | {default} | {rate:.0} | {:.3} |",
        1e3 / rate
    );
}

/// One pass over `rows`; returns posters per second.
fn pass(
    set: &Arc<PosterSet>,
    cache: &Arc<ImageCache>,
    rows: &[usize],
    size: usize,
    batch: usize,
    workers: usize,
) -> f64 {
    let t = Instant::now();
    let mut n = 0;
    for b in Loader::new(
        set.clone(),
        cache.clone(),
        batches(rows, batch),
        size,
        workers,
    ) {
        assert!(b.failed.is_empty(), "{:?}", b.failed);
        n += b.rows.len();
        std::hint::black_box(&b.x);
    }
    n as f64 / t.elapsed().as_secs_f64()
}
