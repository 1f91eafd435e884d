//! Checkpoints in the safetensors format, so they load in Python too:
//!
//! ```python
//! from safetensors.numpy import load_file
//! w = load_file("runs/default/model.safetensors")["conv2d.kernel"]  # [16, 3, 3, 3]
//! ```
//!
//! Tensor names follow Keras's layer names (`conv2d_1.kernel`,
//! `batch_normalization.moving_mean`, `dense_2.bias`). Layouts are
//! postergrad's: conv kernels [out, in, kh, kw] (PyTorch's order; Keras uses
//! [kh, kw, in, out]), dense kernels [in, out] (as Keras), and the flatten
//! before the first dense layer runs over NCHW, so that kernel's rows are in
//! (channel, y, x) order. The header's metadata names the model, the input
//! size, the genres and their training frequencies (the label-prior baseline).
//!
//! Files are written atomically: to a temporary file beside the target,
//! flushed to disk, then renamed over it. A crash leaves the old checkpoint
//! or the new one, never half of one.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Model, ModelKind};
use crate::tensor::Tensor;

/// Format tag in every checkpoint's metadata.
pub const FORMAT: &str = "postergrad-1";

/// What a checkpoint says about itself (stored as safetensors metadata).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    pub model: String,
    pub size: usize,
    pub genres: Vec<String>,
    /// Each genre's frequency in the training split (the baseline's scores).
    pub label_prior: Vec<f64>,
    pub seed: u64,
    /// Completed epochs.
    pub epoch: usize,
    /// Optimizer steps taken.
    pub step: u64,
    /// Which data trained it.
    pub data: String,
}

impl CheckpointInfo {
    pub fn kind(&self) -> Result<ModelKind> {
        self.model.parse()
    }

    fn to_metadata(&self, extra: &[(&str, String)]) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert("format".into(), FORMAT.into());
        m.insert("model".into(), self.model.clone());
        m.insert("size".into(), self.size.to_string());
        m.insert(
            "genres".into(),
            serde_json::to_string(&self.genres).expect("strings"),
        );
        m.insert(
            "label_prior".into(),
            serde_json::to_string(&self.label_prior).expect("numbers"),
        );
        m.insert("seed".into(), self.seed.to_string());
        m.insert("epoch".into(), self.epoch.to_string());
        m.insert("step".into(), self.step.to_string());
        m.insert("data".into(), self.data.clone());
        m.insert(
            "layout".into(),
            "conv kernels [out, in, kh, kw]; dense kernels [in, out]; flatten in NCHW order".into(),
        );
        for (k, v) in extra {
            m.insert(k.to_string(), v.clone());
        }
        m
    }
}

/// A checkpoint read from disk.
pub struct Checkpoint {
    pub path: PathBuf,
    pub info: CheckpointInfo,
    /// Every metadata entry, including the ones `info` parsed.
    pub metadata: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

fn ckpt_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Writes `bytes` to `path` atomically (temporary file + fsync + rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Write {
        path: path.display().to_string(),
        error: source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Saves `tensors` (read back from the GPU) with `info` and `extra`
/// metadata to `path`, atomically.
pub fn save(
    gpu: &Gpu,
    path: &Path,
    tensors: &[(String, &Tensor)],
    info: &CheckpointInfo,
    extra: &[(&str, String)],
) -> Result<()> {
    let mut data: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let values = t.to_vec(gpu)?;
        data.push((
            name.clone(),
            t.dims().to_vec(),
            bytemuck::cast_slice(&values).to_vec(),
        ));
    }
    let views = data
        .iter()
        .map(|(n, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ckpt_error(path, e.to_string()))?;
    let bytes = safetensors::serialize(views, Some(info.to_metadata(extra)))
        .map_err(|e| ckpt_error(path, e.to_string()))?;
    write_atomically(path, &bytes)
}

/// Saves a model's weights and batch-norm statistics.
pub fn save_model(gpu: &Gpu, path: &Path, model: &Model, info: &CheckpointInfo) -> Result<()> {
    save(gpu, path, &model.named_tensors(), info, &[])
}

impl Checkpoint {
    /// Reads and validates a checkpoint file.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let bytes = std::fs::read(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                ckpt_error(
                    path,
                    "not found; pass the model.safetensors of a finished run \
                     (runs/<name>/model.safetensors)",
                )
            } else {
                Error::Io {
                    path: path.display().to_string(),
                    error: source,
                }
            }
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
            ckpt_error(
                path,
                format!("not a safetensors file ({e}); was it written by postergrad?"),
            )
        })?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| ckpt_error(path, e.to_string()))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let get = |k: &str| {
            metadata.get(k).cloned().ok_or_else(|| {
                ckpt_error(
                    path,
                    format!("metadata has no `{k}` (not a postergrad checkpoint?)"),
                )
            })
        };
        if get("format")? != FORMAT {
            return Err(ckpt_error(
                path,
                format!(
                    "format `{}`, this postergrad reads `{FORMAT}`",
                    get("format")?
                ),
            ));
        }
        let num = |k: &str| -> Result<u64> {
            get(k)?
                .parse()
                .map_err(|_| ckpt_error(path, format!("metadata `{k}` is not a number")))
        };
        let info = CheckpointInfo {
            model: get("model")?,
            size: num("size")? as usize,
            genres: serde_json::from_str(&get("genres")?)
                .map_err(|e| ckpt_error(path, format!("metadata `genres`: {e}")))?,
            label_prior: serde_json::from_str(&get("label_prior")?)
                .map_err(|e| ckpt_error(path, format!("metadata `label_prior`: {e}")))?,
            seed: num("seed")?,
            epoch: num("epoch")? as usize,
            step: num("step")?,
            data: get("data")?,
        };
        info.kind()
            .map_err(|e| ckpt_error(path, format!("metadata `model`: {e}")))?;
        if info.label_prior.len() != info.genres.len() {
            return Err(ckpt_error(
                path,
                "metadata `label_prior` and `genres` differ in length",
            ));
        }
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(ckpt_error(
                    path,
                    format!("tensor {name} is {:?}; postergrad stores F32", view.dtype()),
                ));
            }
            let values = crate::nn::weights::f32_le(view.data());
            tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(Checkpoint {
            path: path.to_path_buf(),
            info,
            metadata,
            tensors,
        })
    }

    /// Every tensor's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The shape and values of the tensor called `name`, whatever its shape.
    pub fn get(&self, name: &str) -> Option<(&[usize], &[f32])> {
        self.tensors
            .get(name)
            .map(|(shape, values)| (&shape[..], &values[..]))
    }

    /// The tensor called `name`, checked against the shape it must have.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<&[f32]> {
        let (got, values) = self.tensors.get(name).ok_or_else(|| {
            ckpt_error(
                &self.path,
                format!("has no tensor `{name}` (does it belong to another model?)"),
            )
        })?;
        if got != shape {
            return Err(ckpt_error(
                &self.path,
                format!("tensor `{name}` has shape {got:?}, the model needs {shape:?}"),
            ));
        }
        Ok(values)
    }

    /// Writes every tensor the model holds from this checkpoint.
    pub fn restore(&self, gpu: &Gpu, model: &Model) -> Result<()> {
        for (name, t) in model.named_tensors() {
            t.write(gpu, self.tensor(&name, t.dims())?)?;
        }
        Ok(())
    }

    /// Builds the model the checkpoint describes and loads its weights.
    pub fn build_model(&self, gpu: &Gpu) -> Result<Model> {
        let model = Model::new(
            gpu,
            self.info.kind()?,
            self.info.size,
            self.info.genres.len(),
            self.info.seed,
        )?;
        self.restore(gpu, &model)?;
        Ok(model)
    }
}
