//! Batches decoded ahead of the GPU on background threads.
//!
//! Worker threads take batch numbers in order from a shared counter, decode
//! (or draw) the batch's posters, build the f32 NCHW input and the labels,
//! and send the batch through a bounded channel. The consumer puts batches
//! back in order. At most `workers` batches are being built and `workers`
//! wait in the channel, so memory stays bounded whatever the dataset size.
//!
//! Decoded images can be kept in an [`ImageCache`] (u8, 3·size² bytes each)
//! when the whole set fits in its byte budget; later epochs then skip JPEG
//! decoding. A failed decode is cached too, so it is reported once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use crate::posters::{append_chw, PosterSet};
use crate::rng::Rng;

/// Decoded posters (u8 HWC), one slot per poster, filled on first use.
pub struct ImageCache {
    slots: Vec<OnceLock<Result<Arc<[u8]>, String>>>,
    enabled: bool,
}

impl ImageCache {
    /// A cache for `posters` images of `size`×`size`, enabled only if all of
    /// them fit in `budget_bytes`.
    pub fn new(posters: usize, size: usize, budget_bytes: u64) -> ImageCache {
        let need = Self::bytes_needed(posters, size);
        ImageCache {
            slots: (0..posters).map(|_| OnceLock::new()).collect(),
            enabled: need <= budget_bytes,
        }
    }

    pub fn bytes_needed(posters: usize, size: usize) -> u64 {
        posters as u64 * 3 * (size * size) as u64
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn get(&self, set: &PosterSet, i: usize, size: usize) -> Result<Arc<[u8]>, String> {
        let load = || {
            set.load_image(i, size)
                .map(Arc::from)
                .map_err(|e| e.to_string())
        };
        if self.enabled {
            self.slots[i].get_or_init(load).clone()
        } else {
            load()
        }
    }
}

/// One batch, ready for the GPU.
#[derive(Debug)]
pub struct Batch {
    /// Position of the batch in the epoch.
    pub number: usize,
    /// The posters it holds (indices into the set); failed ones are left out.
    pub rows: Vec<usize>,
    /// [rows, 3, size, size] in [0, 1].
    pub x: Vec<f32>,
    /// [rows, genres], 0/1.
    pub y: Vec<f32>,
    /// Posters that could not be loaded: (index, message naming Id and path).
    pub failed: Vec<(usize, String)>,
}

/// Everything the workers share.
struct Plan {
    set: Arc<PosterSet>,
    cache: Arc<ImageCache>,
    batches: Vec<Vec<usize>>,
    size: usize,
    /// Flip posters left-right at random (augmentation), seeded by this.
    flip: Option<u64>,
    next: AtomicUsize,
}

impl Plan {
    fn build(&self, number: usize) -> Batch {
        let size = self.size;
        let genres = self.set.genres.len();
        let want = &self.batches[number];
        let mut batch = Batch {
            number,
            rows: Vec::with_capacity(want.len()),
            x: Vec::with_capacity(want.len() * 3 * size * size),
            y: Vec::with_capacity(want.len() * genres),
            failed: vec![],
        };
        for &i in want {
            match self.cache.get(&self.set, i, size) {
                Ok(pixels) => {
                    let flipped;
                    let pixels = match self.flip {
                        Some(seed)
                            if Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64)
                                .uniform()
                                < 0.5 =>
                        {
                            flipped = flip_horizontally(&pixels, size);
                            &flipped[..]
                        }
                        _ => &pixels[..],
                    };
                    append_chw(&mut batch.x, pixels, size);
                    batch.y.extend_from_slice(&self.set.posters[i].labels);
                    batch.rows.push(i);
                }
                Err(message) => batch.failed.push((i, message)),
            }
        }
        batch
    }
}

/// An iterator over the batches of one pass, in order.
pub struct Loader {
    rx: Option<Receiver<Batch>>,
    pending: BTreeMap<usize, Batch>,
    next: usize,
    total: usize,
    workers: Vec<JoinHandle<()>>,
}

impl Loader {
    /// Starts `workers` threads building `batches` (lists of poster indices)
    /// at `size`×`size`.
    pub fn new(
        set: Arc<PosterSet>,
        cache: Arc<ImageCache>,
        batches: Vec<Vec<usize>>,
        size: usize,
        workers: usize,
    ) -> Loader {
        Self::with_flips(set, cache, batches, size, workers, None)
    }

    /// As [`Loader::new`], and with `flip = Some(seed)` each poster is
    /// mirrored left-right with probability ½, decided by (seed, poster).
    pub fn with_flips(
        set: Arc<PosterSet>,
        cache: Arc<ImageCache>,
        batches: Vec<Vec<usize>>,
        size: usize,
        workers: usize,
        flip: Option<u64>,
    ) -> Loader {
        let total = batches.len();
        let workers = workers.clamp(1, total.max(1));
        let (tx, rx) = sync_channel::<Batch>(workers);
        let plan = Arc::new(Plan {
            set,
            cache,
            batches,
            size,
            flip,
            next: AtomicUsize::new(0),
        });
        let handles = (0..workers)
            .map(|w| {
                let (tx, plan) = (tx.clone(), plan.clone());
                std::thread::Builder::new()
                    .name(format!("postergrad-loader-{w}"))
                    .spawn(move || loop {
                        let n = plan.next.fetch_add(1, Ordering::Relaxed);
                        if n >= plan.batches.len() || tx.send(plan.build(n)).is_err() {
                            return;
                        }
                    })
                    .expect("spawning a loader thread")
            })
            .collect();
        Loader {
            rx: Some(rx),
            pending: BTreeMap::new(),
            next: 0,
            total,
            workers: handles,
        }
    }

    /// A sensible number of decoding threads for this machine.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4)
    }

    /// Number of batches in the pass.
    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

impl Iterator for Loader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.next >= self.total {
            return None;
        }
        loop {
            if let Some(b) = self.pending.remove(&self.next) {
                self.next += 1;
                return Some(b);
            }
            let b = self.rx.as_ref()?.recv().ok()?;
            self.pending.insert(b.number, b);
        }
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Dropping the receiver makes every blocked `send` fail: workers exit.
        self.rx = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// A HWC image mirrored left-right.
pub fn flip_horizontally(hwc: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(hwc.len());
    for row in hwc.chunks_exact(3 * size) {
        for px in row.chunks_exact(3).rev() {
            out.extend_from_slice(px);
        }
    }
    out
}

/// Cuts `rows` into batches of `batch` (the last one may be shorter).
pub fn batches(rows: &[usize], batch: usize) -> Vec<Vec<usize>> {
    rows.chunks(batch.max(1)).map(|c| c.to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posters::SyntheticConfig;

    #[test]
    fn batches_arrive_in_order_with_their_labels() {
        let set = Arc::new(PosterSet::synthetic(SyntheticConfig { count: 50, seed: 1 }));
        let cache = Arc::new(ImageCache::new(50, 16, 1 << 20));
        assert!(cache.enabled());
        let rows: Vec<usize> = (0..50).rev().collect();
        let got: Vec<Batch> = Loader::new(set.clone(), cache, batches(&rows, 8), 16, 3).collect();
        assert_eq!(got.len(), 7);
        assert_eq!(got[6].rows.len(), 2);
        for (n, b) in got.iter().enumerate() {
            assert_eq!(b.number, n);
            assert_eq!(b.rows, rows[n * 8..(n * 8 + 8).min(50)].to_vec());
            assert_eq!(b.x.len(), b.rows.len() * 3 * 16 * 16);
            for (k, &i) in b.rows.iter().enumerate() {
                assert_eq!(&b.y[k * 8..k * 8 + 8], &set.posters[i].labels[..]);
            }
        }
    }

    #[test]
    fn flips_mirror_rows_and_depend_on_the_seed() {
        let img: Vec<u8> = (0..2 * 2 * 3).map(|v| v as u8).collect();
        assert_eq!(
            flip_horizontally(&img, 2),
            vec![3, 4, 5, 0, 1, 2, 9, 10, 11, 6, 7, 8]
        );
        let set = Arc::new(PosterSet::synthetic(SyntheticConfig { count: 64, seed: 1 }));
        let cache = Arc::new(ImageCache::new(64, 8, 1 << 20));
        let rows = vec![(0..64).collect::<Vec<_>>()];
        let plain = Loader::new(set.clone(), cache.clone(), rows.clone(), 8, 1)
            .next()
            .unwrap();
        let a = Loader::with_flips(set.clone(), cache.clone(), rows.clone(), 8, 1, Some(1))
            .next()
            .unwrap();
        let b = Loader::with_flips(set, cache, rows, 8, 1, Some(2))
            .next()
            .unwrap();
        let per = 3 * 64;
        let flipped = |x: &Batch| {
            (0..64)
                .filter(|&i| x.x[i * per..(i + 1) * per] != plain.x[i * per..(i + 1) * per])
                .count()
        };
        let (fa, fb) = (flipped(&a), flipped(&b));
        assert!(
            (16..=48).contains(&fa) && (16..=48).contains(&fb),
            "{fa} {fb}"
        );
        assert_ne!(a.x, b.x);
    }

    #[test]
    fn a_dropped_loader_stops_its_threads() {
        let set = Arc::new(PosterSet::synthetic(SyntheticConfig {
            count: 200,
            seed: 1,
        }));
        let cache = Arc::new(ImageCache::new(200, 16, 0));
        assert!(!cache.enabled());
        let mut loader = Loader::new(set, cache, batches(&(0..200).collect::<Vec<_>>(), 4), 16, 2);
        assert!(loader.next().is_some());
        drop(loader); // must not hang
    }
}
