//! Seeded mutation fuzzing of every parser that reads a user's file: the
//! CSV reader (`PosterSet::open`), the image loader (`PosterSet::load_image`
//! and the structure check), and the checkpoint loader
//! (`Checkpoint::load`). Each input is a valid file changed by one to four
//! mutations (bit flips, bytes set to 0/0xFF/0x7F/0x80, header-sized fields
//! set to extreme values, cuts, inserts, deletions, duplicated runs). Every
//! input must give a value or an error naming the file — never a panic —
//! and no single allocation may exceed twice the decoded-image cap (an
//! allocation sized by an unchecked header field would).
//!
//! `POSTERGRAD_FUZZ_CASES=N` sets the inputs per target (default 400, the
//! CI sample); `POSTERGRAD_FUZZ_SEED=S` the seed. A failing input is saved
//! and its path printed, with the seed and case that rebuild it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use postergrad::rng::Rng;

/// The system allocator, recording the largest single request.
struct Recording;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `base` changed by one to four seeded mutations.
fn mutate(base: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = base.to_vec();
    let pick = |rng: &mut Rng, n: usize| (rng.uniform() * n as f64) as usize % n.max(1);
    for _ in 0..1 + pick(rng, 4) {
        let n = b.len();
        if n == 0 {
            b.push(pick(rng, 256) as u8);
            continue;
        }
        let at = pick(rng, n);
        match pick(rng, 8) {
            0 => b[at] ^= 1 << pick(rng, 8),
            1 => b[at] = [0x00, 0xFF, 0x7F, 0x80][pick(rng, 4)],
            2 => {
                // a header-sized field set to an extreme
                let v: u32 = [0, 1, 0xFFFF, 0x7FFF_FFFF, 0xFFFF_FFFF][pick(rng, 5)];
                for (k, byte) in v.to_be_bytes().iter().enumerate() {
                    if at + k < n {
                        b[at + k] = *byte;
                    }
                }
            }
            3 => b.truncate(at),
            4 => {
                let run: Vec<u8> = (0..1 + pick(rng, 16))
                    .map(|_| pick(rng, 256) as u8)
                    .collect();
                b.splice(at..at, run);
            }
            5 => {
                let end = (at + 1 + pick(rng, 64)).min(n);
                b.drain(at..end);
            }
            6 => {
                let end = (at + 1 + pick(rng, 64)).min(n);
                let run = b[at..end].to_vec();
                b.splice(at..at, run);
            }
            _ => {
                // ASCII noise where text formats have their structure
                let ascii = b",\"[]'\n\r01 ";
                b[at] = ascii[pick(rng, ascii.len())];
            }
        }
    }
    b
}

/// Runs `cases` mutants of each base through `check` (which returns the
/// error text, if any): no panic, and every error names `names_path`.
fn fuzz(target: &str, bases: &[Vec<u8>], path: &Path, mut check: impl FnMut() -> Option<String>) {
    let cases = setting("POSTERGRAD_FUZZ_CASES", 400);
    let seed = setting("POSTERGRAD_FUZZ_SEED", 1);
    let shown = path.display().to_string();
    let mut rng = Rng::new(seed ^ (target.len() as u64 * 0x9E37_79B9));
    let (mut errors, started) = (0, std::time::Instant::now());
    for case in 0..cases {
        let input = mutate(&bases[case as usize % bases.len()], &mut rng);
        std::fs::write(path, &input).unwrap();
        let saved = || {
            let keep = path.with_extension(format!("failing-{case}"));
            std::fs::copy(path, &keep).unwrap();
            format!(
                "{target}: case {case} (POSTERGRAD_FUZZ_SEED={seed}), input saved as {}",
                keep.display()
            )
        };
        match std::panic::catch_unwind(AssertUnwindSafe(&mut check)) {
            Err(_) => panic!("{} panicked", saved()),
            Ok(Some(e)) => {
                errors += 1;
                assert!(
                    e.contains(&shown),
                    "{}: the error does not name the file: {e}",
                    saved()
                );
            }
            Ok(None) => {}
        }
    }
    let largest = LARGEST.load(Ordering::Relaxed) as u64;
    eprintln!(
        "{target}: {cases} inputs (seed {seed}), {errors} errors, 0 panics, largest allocation \
         {} KB, {:.1} s",
        largest >> 10,
        started.elapsed().as_secs_f64()
    );
    assert!(
        largest <= 2 * postergrad::posters::MAX_DECODED_BYTES,
        "{target}: an allocation of {largest} bytes"
    );
}

#[test]
fn fuzz_the_csv_reader() {
    let dir = common::tmp("fuzz-csv");
    let csv = "Id,Genre,Action,Comedy,Drama\n\
               tt01,\"['Action', 'Drama']\",1,0,1\n\
               tt02,\"['Comedy']\",0,1,0\n\
               tt03,\"[]\",0,0,0\n\
               tt02,\"['Comedy']\",0,1,0\n";
    let path = dir.join("train.csv");
    fuzz("csv", &[csv.as_bytes().to_vec()], &path, || {
        postergrad::posters::PosterSet::open(&dir)
            .err()
            .map(|e| e.to_string())
    });
}

#[test]
fn fuzz_the_image_loader() {
    let dir = common::tmp("fuzz-image");
    let mut rng = Rng::new(3);
    let img = image::RgbImage::from_fn(24, 36, |x, y| {
        image::Rgb([(x * 10) as u8, (y * 7) as u8, (rng.uniform() * 255.0) as u8])
    });
    let encode = |format| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).unwrap();
        out.into_inner()
    };
    let mut progressive = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut progressive, 80);
    enc.set_progressive(true);
    enc.encode(img.as_raw(), 24, 36, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let bases = vec![
        encode(image::ImageFormat::Jpeg),
        encode(image::ImageFormat::Png),
        progressive,
    ];
    // One poster, read through the dataset so that errors name its file.
    std::fs::create_dir_all(dir.join("Images")).unwrap();
    std::fs::write(dir.join("train.csv"), "Id,Genre,Drama\np,\"['Drama']\",1\n").unwrap();
    let set = postergrad::posters::PosterSet::open(&dir).unwrap();
    let path = dir.join("Images/p.jpg");
    fuzz("image", &bases, &path, || match set.load_image(0, 16) {
        Ok(pixels) => {
            assert_eq!(pixels.len(), 16 * 16 * 3);
            // what decodes also passes the scan a run makes first
            assert_eq!(postergrad::posters::check_image_file(&path), Ok(()));
            None
        }
        Err(e) => Some(e.to_string()),
    });
}

#[test]
fn fuzz_the_structure_check_on_random_bytes() {
    let mut rng = Rng::new(9);
    let cases = setting("POSTERGRAD_FUZZ_CASES", 400) * 10;
    for _ in 0..cases {
        let n = (rng.uniform() * 300.0) as usize;
        let mut b: Vec<u8> = (0..n).map(|_| (rng.uniform() * 256.0) as u8).collect();
        // half of them start like a JPEG or a PNG, to get past the signature
        if rng.uniform() < 0.25 && b.len() > 3 {
            b[..3].copy_from_slice(&[0xFF, 0xD8, 0xFF]);
        } else if rng.uniform() < 0.33 && b.len() > 8 {
            b[..8].copy_from_slice(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        }
        let _ = postergrad::image_check::check(&b);
    }
}

#[test]
fn fuzz_the_checkpoint_loader() {
    let dir = common::tmp("fuzz-ckpt");
    let gpu = postergrad::Gpu::new().unwrap();
    let config = postergrad::train::TrainConfig {
        model: postergrad::nn::ModelKind::Mlp,
        size: Some(8),
        epochs: 1,
        batch: 16,
        limit: Some(40),
        workers: 1,
        out: dir.join("run"),
        ..Default::default()
    };
    postergrad::train::train(&gpu, &config, |_| {}).unwrap();
    let base = std::fs::read(dir.join("run/model.safetensors")).unwrap();
    // Mutations land in the header as often as in the data: the header is
    // the first few hundred bytes.
    let header_len = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize + 8;
    let head = base[..header_len.min(base.len())].to_vec();
    let path = dir.join("mutant.safetensors");
    let mut rng = Rng::new(5);
    let data = base[header_len..].to_vec();
    fuzz("checkpoint", std::slice::from_ref(&base), &path, || {
        // half the cases: a mutated header over the real data
        if rng.uniform() < 0.5 {
            let mut whole = mutate(&head, &mut rng);
            whole.extend_from_slice(&data);
            std::fs::write(&path, whole).unwrap();
        }
        postergrad::checkpoint::Checkpoint::load(&path)
            .err()
            .map(|e| e.to_string())
    });
}
