//! Transfer learning with a frozen backbone: each poster's pooled features
//! are computed once (the backbone in inference mode, batch-norm moving
//! statistics) and cached beside the run, so every epoch trains only the
//! head on them — the sources' 30-epoch ResNet-50 recipe becomes one
//! backbone pass plus seconds per epoch.
//!
//! The cache, `<out>/features.safetensors`, holds a [posters, features]
//! tensor and, in its metadata, the poster rows it covers and its key: the
//! model, the input size, the data, and a checksum of every backbone tensor
//! (weights and statistics). A cache whose key differs is recomputed, never
//! used; `--resume` finds it and skips the extraction.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::{Event, TrainConfig};
use crate::checkpoint::write_atomically;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::loader::{batches, Batch, ImageCache, Loader};
use crate::nn::Model;
use crate::posters::PosterSet;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

/// Each poster's features, by row of the poster set.
pub struct FeatureTable {
    pub dim: usize,
    index: HashMap<usize, usize>,
    values: Vec<f32>,
    /// Posters whose image could not be read while extracting.
    pub failed: Vec<(usize, String)>,
}

impl FeatureTable {
    /// A batch of `rows` as the loader would hand it over, with features in
    /// place of pixels ([rows, dim]); posters without features are left out
    /// (they failed while extracting and were reported then).
    pub fn batch(&self, set: &PosterSet, number: usize, rows: &[usize]) -> Batch {
        let mut b = Batch {
            number,
            rows: Vec::with_capacity(rows.len()),
            x: Vec::with_capacity(rows.len() * self.dim),
            y: Vec::new(),
            failed: Vec::new(),
        };
        for &r in rows {
            if let Some(&k) = self.index.get(&r) {
                b.rows.push(r);
                b.x.extend_from_slice(&self.values[k * self.dim..(k + 1) * self.dim]);
                b.y.extend_from_slice(&set.posters[r].labels);
            }
        }
        b
    }

    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.index.len()
    }
}

/// Where the cache lives in a run directory.
pub fn cache_path(out: &Path) -> PathBuf {
    out.join("features.safetensors")
}

/// The cache's key: what the features depend on.
fn key(gpu: &Gpu, model: &Model, data: &str, rows: &[usize]) -> Result<String> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    rows.hash(&mut h);
    for (name, t) in model.named_tensors() {
        if name.starts_with("fc.") {
            continue;
        }
        name.hash(&mut h);
        for v in t.to_vec(gpu)? {
            v.to_bits().hash(&mut h);
        }
    }
    Ok(format!(
        "{} size {} data {data} posters {} backbone {:016x}",
        model.kind,
        model.size,
        rows.len(),
        h.finish()
    ))
}

/// The features of `rows`: read from the run's cache when its key matches,
/// otherwise computed (progress through `on`) and cached.
#[allow(clippy::too_many_arguments)] // the run's parts the extraction reads, handed over once
pub(super) fn extract_or_load(
    gpu: &Gpu,
    config: &TrainConfig,
    model: &Model,
    set: &Arc<PosterSet>,
    cache: &Arc<ImageCache>,
    rows: &[usize],
    on: &mut impl FnMut(Event),
) -> Result<FeatureTable> {
    let Some(net) = &model.resnet else {
        return Err(Error::Config {
            what: "--freeze backbone".into(),
            message: format!("model {} has no backbone", model.kind),
        });
    };
    let dim = net.spec.features();
    let key = key(gpu, model, &set.describe(), rows)?;
    let path = cache_path(&config.out);
    if let Some(t) = read_cache(&path, &key, dim) {
        on(Event::Info(format!(
            "features: {} posters × {dim} read from {} (same backbone, size and data)",
            t.len(),
            path.display()
        )));
        return Ok(t);
    }
    on(Event::Info(format!(
        "features: extracting {} posters × {dim} once with the frozen backbone (inference mode)",
        rows.len()
    )));
    let started = Instant::now();
    let mut table = FeatureTable {
        dim,
        index: HashMap::new(),
        values: Vec::with_capacity(rows.len() * dim),
        failed: Vec::new(),
    };
    let size = model.size;
    on(Event::Extracting {
        done: 0,
        total: rows.len(),
    });
    let all = batches(rows, config.batch);
    for b in Loader::new(set.clone(), cache.clone(), all, size, config.workers) {
        table.failed.extend(b.failed);
        if b.rows.is_empty() {
            continue;
        }
        let n = b.rows.len();
        let tape = Tape::new(gpu, Mode::Inference);
        let x = tape.constant(Tensor::from_slice(gpu, [n, 3, size, size], &b.x)?);
        let f = net.features(&tape, &x)?.value.to_vec(gpu)?;
        for (k, &r) in b.rows.iter().enumerate() {
            table.index.insert(r, table.index.len());
            table.values.extend_from_slice(&f[k * dim..(k + 1) * dim]);
        }
        on(Event::Extracting {
            done: table.index.len() + table.failed.len(),
            total: rows.len(),
        });
    }
    let seconds = started.elapsed().as_secs_f64();
    on(Event::Info(format!(
        "features: {} posters in {seconds:.0} s ({:.1} posters/s){}",
        table.len(),
        table.len() as f64 / seconds.max(1e-9),
        if table.failed.is_empty() {
            String::new()
        } else {
            format!("; {} could not be read", table.failed.len())
        }
    )));
    write_cache(&path, &key, &table)?;
    Ok(table)
}

fn read_cache(path: &Path, key: &str, dim: usize) -> Option<FeatureTable> {
    let bytes = std::fs::read(path).ok()?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    let meta = header.metadata().clone()?;
    if meta.get("key")? != key {
        return None;
    }
    let rows: Vec<usize> = serde_json::from_str(meta.get("rows")?).ok()?;
    let st = safetensors::SafeTensors::deserialize(&bytes).ok()?;
    let view = st.tensor("features").ok()?;
    if view.shape() != [rows.len(), dim] || view.dtype() != safetensors::Dtype::F32 {
        return None;
    }
    let values = crate::nn::weights::f32_le(view.data());
    Some(FeatureTable {
        dim,
        index: rows.iter().enumerate().map(|(k, &r)| (r, k)).collect(),
        values,
        failed: Vec::new(),
    })
}

fn write_cache(path: &Path, key: &str, t: &FeatureTable) -> Result<()> {
    let mut rows = vec![0usize; t.len()];
    for (&r, &k) in &t.index {
        rows[k] = r;
    }
    let bytes: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![t.len(), t.dim], &bytes)
            .map_err(|e| Error::Config {
                what: "feature cache".into(),
                message: e.to_string(),
            })?;
    let meta = HashMap::from([
        ("key".to_string(), key.to_string()),
        (
            "rows".to_string(),
            serde_json::to_string(&rows).unwrap_or_default(),
        ),
    ]);
    let out = safetensors::tensor::serialize([("features", view)], Some(meta)).map_err(|e| {
        Error::Config {
            what: "feature cache".into(),
            message: e.to_string(),
        }
    })?;
    write_atomically(path, &out)
}
