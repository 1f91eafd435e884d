//! The posters a run trains on: the dataset, its unusable images left out
//! before the split, the split, and the input size.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Event, RunSettings, TrainConfig};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::ModelKind;
use crate::posters::{check_image_file, PosterSet, Source};
use crate::rng::Rng;

/// The posters of a run, split, with everything derived from them.
pub(super) struct Prepared {
    pub set: Arc<PosterSet>,
    pub size: usize,
    pub train_rows: Vec<usize>,
    pub val_rows: Vec<usize>,
    /// Each genre's frequency over the training split.
    pub prior: Vec<f64>,
    pub settings: RunSettings,
    /// Posters left out for unusable images.
    pub unusable: usize,
}

impl Prepared {
    pub fn genres(&self) -> usize {
        self.set.genres.len()
    }
}

/// Opens the dataset, leaves out unusable images, splits it, and checks that
/// the model fits the adapter and that one batch of posters remains.
pub(super) fn prepare(
    gpu: &Gpu,
    config: &TrainConfig,
    on: &mut impl FnMut(Event),
) -> Result<Prepared> {
    let mut set = open_dataset(config)?;
    for w in &set.warnings {
        on(Event::Warning(w.clone()));
    }
    let unusable = drop_unusable_images(&mut set, config, on)?;
    let genres = set.genres.len();
    let size = resolve_size(config.model, config.size, &set, genres)?;
    check_fits(gpu, config.model, size, genres, config.batch)?;
    let (train_rows, val_rows) = set.split(config.seed, config.limit, config.val_split)?;
    if train_rows.len() < config.batch {
        return Err(Error::Config {
            what: format!("--batch {}", config.batch),
            message: format!(
                "only {} usable posters remain for training ({} listed, {} unusable, {} held out \
                 for validation), fewer than one batch; use --batch {} or less, or more posters",
                train_rows.len(),
                set.posters.len() + unusable,
                unusable,
                val_rows.len(),
                train_rows.len()
            ),
        });
    }
    let prior = set.label_prior(&train_rows);
    let settings = RunSettings {
        data: set.describe(),
        model: config.model.to_string(),
        recipe: config.recipe,
        size,
        batch: config.batch,
        learning_rate: config.adam.learning_rate,
        seed: config.seed,
        val_split: config.val_split,
        limit: config.limit,
        train_posters: train_rows.len(),
        val_posters: val_rows.len(),
    };
    Ok(Prepared {
        set: Arc::new(set),
        size,
        train_rows,
        val_rows,
        prior,
        settings,
        unusable,
    })
}

/// Opens the dataset a config names.
pub fn open_dataset(config: &TrainConfig) -> Result<PosterSet> {
    match &config.data {
        Some(dir) => PosterSet::open(dir),
        None => Ok(PosterSet::synthetic(config.synthetic)),
    }
}

/// The input size a config resolves to for a dataset.
pub fn resolve_size(
    model: ModelKind,
    size: Option<usize>,
    set: &PosterSet,
    labels: usize,
) -> Result<usize> {
    let size = match (size, &set.source) {
        (Some(s), _) => s,
        (None, Source::Dir(_)) => model.default_size(),
        (None, Source::Synthetic(_)) => (48..=model.default_size())
            .find(|&s| model.describe(s, labels).is_ok())
            .unwrap_or(48),
    };
    if size == 0 {
        return Err(Error::Config {
            what: "--size".into(),
            message: "must be at least 1".into(),
        });
    }
    model.describe(size, labels)?;
    Ok(size)
}

/// Leaves out the posters whose image cannot be used — missing, empty, not
/// a JPEG or PNG, damaged in structure, or too large to decode
/// ([`check_image_file`](crate::posters::check_image_file), which reads
/// each file once and decodes nothing) — before the split, so the split
/// holds usable posters only. Warns about each (the first ten by name);
/// with `--strict` the first is an error, and so is a dataset with no
/// usable poster at all. Returns the count left out.
fn drop_unusable_images(
    set: &mut PosterSet,
    config: &TrainConfig,
    on: &mut impl FnMut(Event),
) -> Result<usize> {
    let bad = unusable_images(set);
    let Some((first, first_message)) = bad.first() else {
        return Ok(0);
    };
    let path = |i: usize| set.image_path(i).unwrap_or_default().display().to_string();
    let named =
        |&(i, ref m): &(usize, String)| format!("poster {} ({}): {m}", set.posters[i].id, path(i));
    if config.strict {
        return Err(Error::Image {
            id: set.posters[*first].id.clone(),
            path: path(*first),
            message: format!(
                "{first_message} ({} of {} images unusable; without --strict they are skipped)",
                bad.len(),
                set.posters.len()
            ),
        });
    }
    for b in bad.iter().take(10) {
        on(Event::Warning(format!("{}; skipped", named(b))));
    }
    if bad.len() > 10 {
        on(Event::Warning(format!(
            "… and {} more unusable images, skipped",
            bad.len() - 10
        )));
    }
    if bad.len() == set.posters.len() {
        let images = config.data.clone().unwrap_or_default().join("Images");
        if bad.iter().all(|(_, m)| m == "file not found") {
            return Err(Error::Image {
                id: set.posters[*first].id.clone(),
                path: path(*first),
                message: format!(
                    "file not found, nor any of the {} images train.csv lists; they belong in {}/<Id>.jpg",
                    set.posters.len(),
                    images.display()
                ),
            });
        }
        return Err(Error::Config {
            what: format!(
                "--data {}",
                config.data.clone().unwrap_or_default().display()
            ),
            message: format!(
                "none of the {} posters train.csv lists has a usable image, so there is nothing \
                 to train on; the first: {}; replace them in {} with JPEG or PNG posters",
                set.posters.len(),
                bad.iter().take(3).map(named).collect::<Vec<_>>().join("; "),
                images.display()
            ),
        });
    }
    let gone: HashSet<usize> = bad.iter().map(|(i, _)| *i).collect();
    let kept: Vec<_> = set
        .posters
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, p)| p.clone())
        .collect();
    set.posters = kept;
    Ok(bad.len())
}

/// Every poster whose image file fails [`check_image_file`], with why, in
/// poster order; read on a few threads (the files are independent).
pub fn unusable_images(set: &PosterSet) -> Vec<(usize, String)> {
    let paths: Vec<(usize, PathBuf)> = (0..set.posters.len())
        .filter_map(|i| set.image_path(i).map(|p| (i, p)))
        .collect();
    if paths.is_empty() {
        return vec![];
    }
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8);
    let per = paths.len().div_ceil(threads);
    let mut bad: Vec<(usize, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = paths
            .chunks(per)
            .map(|chunk| {
                s.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(i, p)| check_image_file(p).err().map(|m| (*i, m)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    bad.sort_by_key(|(i, _)| *i);
    bad
}

/// Refuses, before anything is allocated, a model and batch whose largest
/// tensor would not fit one buffer of this adapter, naming the tensor and
/// the largest `--batch` that fits.
fn check_fits(gpu: &Gpu, kind: ModelKind, size: usize, genres: usize, batch: usize) -> Result<()> {
    let limit = gpu.limits().max_buffer_size;
    let mb = |b: u64| b as f64 / 1e6;
    let layers = kind.describe(size, genres)?;
    // Parameters (4 bytes each, the kernel dominating its layer's count).
    if let Some(l) = layers.iter().find(|l| 4 * l.trainable as u64 > limit) {
        return Err(Error::Config {
            what: format!("--size {size}"),
            message: format!(
                "layer `{}` of model {kind} has {} parameters ({:.0} MB), more than the {:.0} MB \
                 the adapter allows per buffer; use a smaller --size",
                l.name.clone(),
                l.trainable,
                mb(4 * l.trainable as u64),
                mb(limit)
            ),
        });
    }
    // Activations: the input images and every layer's output, per sample.
    let (name, shape, per_sample) = layers
        .iter()
        .map(|l| {
            (
                l.name.clone(),
                l.output.clone(),
                l.output.iter().product::<usize>(),
            )
        })
        .chain([("input".to_string(), vec![3, size, size], 3 * size * size)])
        .max_by_key(|(_, _, n)| *n)
        .unwrap_or_default();
    let per_sample = 4 * per_sample as u64;
    let fits = limit / per_sample.max(1);
    if batch as u64 > fits {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        return Err(Error::Config {
            what: format!("--batch {batch}"),
            message: format!(
                "at --size {size} the output of `{name}` ([{batch}, {}]) needs {:.0} MB, more \
                 than the {:.0} MB the adapter allows per buffer; {}",
                dims.join(", "),
                mb(per_sample * batch as u64),
                mb(limit),
                if fits == 0 {
                    "use a smaller --size".to_string()
                } else {
                    format!("use --batch {fits} or less, or a smaller --size")
                }
            ),
        });
    }
    Ok(())
}

pub(super) fn epoch_order(train: &[usize], seed: u64, epoch: usize) -> Vec<usize> {
    let mut order = train.to_vec();
    Rng::new(seed ^ 0xE90C_0000 ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .shuffle(&mut order);
    order
}
