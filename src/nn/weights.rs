//! Pretrained weights: a torchvision state_dict, from a **safetensors** file
//! (what model hubs ship) or a **`.pth`** file as `torch.save` writes it (a
//! zip holding a pickle and one raw file per storage), loaded into a ResNet
//! by torchvision's names. Only what `torch.save` writes for a dict of
//! tensors is read: the pickle opcodes of protocol 2 and the rebuild call of
//! a tensor; anything else is an error naming the file, never executed.
//!
//! The rules: every tensor of the model (but the head) must be in the file
//! with its exact shape; every tensor of the file must be one of the model's
//! (`num_batches_tracked` counters aside, which have no counterpart); each
//! mismatch, missing key or unknown key is listed. F16 and BF16 tensors are
//! converted to f32 (and counted). The head `fc` is loaded when its shape is
//! the model's (`fc.weight` [labels, features], transposed into `fc.kernel`),
//! and otherwise replaced: a 1000-class ImageNet head becomes a fresh
//! 25-genre one.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use super::{Model, ResNet};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// One tensor of a state_dict, in f32.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
    /// The dtype it was stored in ("F32", "F16", "BF16").
    pub dtype: &'static str,
}

/// A state_dict by name (sorted).
pub type StateDict = BTreeMap<String, Loaded>;

/// What [`load_into`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// Tensors loaded into the model.
    pub loaded: usize,
    /// Of those, stored in F16 or BF16 and converted.
    pub converted: usize,
    /// Keys of the file with no counterpart by design (`num_batches_tracked`).
    pub ignored: usize,
    /// The head: loaded, or replaced because the file's has another shape
    /// (its [labels, features]).
    pub head: Head,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Head {
    Loaded,
    Replaced { file_shape: Vec<usize> },
}

fn err(path: &Path, message: impl Into<String>) -> Error {
    Error::Weights {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a state_dict from a safetensors or `.pth` file (told apart by their
/// first bytes, not the name).
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let bytes = std::fs::read(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            err(
                path,
                "not found; docs/training.md says which file to get and where it goes",
            )
        } else {
            Error::Io {
                path: path.display().to_string(),
                error,
            }
        }
    })?;
    if bytes.starts_with(b"PK\x03\x04") {
        pth::read(path, &bytes)
    } else if bytes.len() >= 9 && bytes[8] == b'{' {
        read_safetensors(path, &bytes)
    } else {
        Err(err(
            path,
            "neither a safetensors file nor a torch.save zip (.pth); a legacy (pre-1.6, \
             non-zip) .pth is not read: re-save it with a current torch.save",
        ))
    }
}

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<StateDict> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        err(
            path,
            format!("not a readable safetensors file ({e}); is it truncated?"),
        )
    })?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        let (dtype, values) = match view.dtype() {
            safetensors::Dtype::F32 => ("F32", decode(Kind::F32, view.data())),
            safetensors::Dtype::F16 => ("F16", decode(Kind::F16, view.data())),
            safetensors::Dtype::BF16 => ("BF16", decode(Kind::BF16, view.data())),
            _ if name.ends_with("num_batches_tracked") => ("I64", vec![]),
            other => {
                return Err(err(
                    path,
                    format!("tensor `{name}` is {other:?}; weights must be F32, F16 or BF16"),
                ))
            }
        };
        let shape = view.shape().to_vec();
        out.insert(
            name,
            Loaded {
                shape,
                values,
                dtype,
            },
        );
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    F32,
    F16,
    BF16,
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        // subnormal: man · 2^-24
        (0, m) => return f32::from_bits(sign) + (m as f32) * (-24f32).exp2() * sign_of(h),
        (31, 0) => sign | 0x7f80_0000,
        (31, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

fn sign_of(h: u16) -> f32 {
    if h >> 15 == 1 {
        -1.0
    } else {
        1.0
    }
}

/// Little-endian f32 values, as safetensors and torch.save store them
/// (checkpoints and the feature cache read theirs with it too).
pub(crate) fn f32_le(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn decode(kind: Kind, data: &[u8]) -> Vec<f32> {
    match kind {
        Kind::F32 => f32_le(data),
        Kind::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Kind::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
    }
}

/// Loads `dict` (read from `path`) into `net` by torchvision's names (the
/// rules in the module's comment); nothing is written unless every check
/// passes.
pub fn load_into(gpu: &Gpu, net: &ResNet, path: &Path, dict: &StateDict) -> Result<Imported> {
    let wanted = net.named_tensors();
    let (features, labels) = (net.spec.features(), net.labels());
    let arch = net.spec.name();
    let mut missing = Vec::new();
    let mut wrong = Vec::new();
    let mut plan: Vec<(&crate::tensor::Tensor, &Loaded)> = Vec::new();
    for (name, t) in &wanted {
        if name.starts_with("fc.") {
            continue;
        }
        match dict.get(name) {
            None => missing.push(name.clone()),
            Some(l) if l.shape != t.dims() => wrong.push(format!(
                "`{name}`: the file has {:?}, {arch} needs {:?}",
                l.shape,
                t.dims()
            )),
            Some(l) => plan.push((t, l)),
        }
    }
    let known: std::collections::HashSet<&str> = wanted
        .iter()
        .map(|(n, _)| n.as_str())
        .chain(["fc.weight", "fc.bias"])
        .collect();
    let unknown: Vec<&str> = dict
        .keys()
        .map(String::as_str)
        .filter(|k| !known.contains(k) && !k.ends_with("num_batches_tracked"))
        .collect();
    // The head: [labels', features] in torchvision's layout.
    let head = match (dict.get("fc.weight"), dict.get("fc.bias")) {
        (Some(w), Some(b)) if w.shape.len() == 2 && w.shape[1] == features => {
            if w.shape[0] == labels && b.shape == [labels] {
                Head::Loaded
            } else {
                Head::Replaced {
                    file_shape: w.shape.clone(),
                }
            }
        }
        (Some(w), _) => {
            wrong.push(format!(
                "`fc.weight`: the file has {:?}, {arch} needs [classes, {features}]",
                w.shape
            ));
            Head::Replaced {
                file_shape: w.shape.clone(),
            }
        }
        (None, _) => {
            missing.push("fc.weight".into());
            Head::Replaced { file_shape: vec![] }
        }
    };
    if !(missing.is_empty() && wrong.is_empty() && unknown.is_empty()) {
        let mut m = format!("does not fit {arch}");
        let list = |title: &str, items: &[String]| {
            let shown: Vec<&str> = items.iter().take(12).map(String::as_str).collect();
            let more = items.len().saturating_sub(shown.len());
            format!(
                "\n  {title} ({}): {}{}",
                items.len(),
                shown.join(", "),
                if more > 0 {
                    format!(", … and {more} more")
                } else {
                    String::new()
                }
            )
        };
        if !wrong.is_empty() {
            m += &list("wrong shapes", &wrong);
        }
        if !missing.is_empty() {
            m += &list("missing keys", &missing);
        }
        if !unknown.is_empty() {
            let unknown: Vec<String> = unknown.iter().map(|s| s.to_string()).collect();
            m += &list("unknown keys", &unknown);
        }
        if missing.len() + unknown.len() > 20 {
            m += "\n  (is it another architecture? --model resnet18, resnet34 and resnet50 read \
                  torchvision's resnet18, resnet34 and resnet50)";
        }
        return Err(err(path, m));
    }
    let mut converted = 0;
    for (t, l) in &plan {
        t.write(gpu, &l.values)?;
        converted += (l.dtype != "F32") as usize;
    }
    let mut loaded = plan.len();
    if head == Head::Loaded {
        let (w, b) = (&dict["fc.weight"], &dict["fc.bias"]);
        // [labels, features] → [features, labels]
        let mut kernel = vec![0.0f32; features * labels];
        for (o, row) in w.values.chunks(features).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                kernel[i * labels + o] = v;
            }
        }
        net.fc_kernel.value.write(gpu, &kernel)?;
        net.fc_bias.value.write(gpu, &b.values)?;
        loaded += 2;
        converted += (w.dtype != "F32") as usize + (b.dtype != "F32") as usize;
    }
    let ignored = dict
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .count();
    Ok(Imported {
        loaded,
        converted,
        ignored,
        head,
    })
}

/// Reads `path` and loads it into `model`, a ResNet ([`read_state_dict`],
/// [`load_into`]).
pub fn load_file(gpu: &Gpu, model: &Model, path: &Path) -> Result<Imported> {
    let Some(net) = &model.resnet else {
        return Err(Error::Config {
            what: "--weights".into(),
            message: format!(
                "model {} has no torchvision counterpart; --weights is for the ResNets \
                 (--model resnet18, resnet34, resnet50)",
                model.kind
            ),
        });
    };
    let dict = read_state_dict(path)?;
    load_into(gpu, net, path, &dict)
}

/// The `.pth` reader: the zip, the pickle's opcodes that `torch.save` writes
/// for a dict of tensors, and the storages.
mod pth;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8); // smallest subnormal
        assert_eq!(f16_to_f32(0x8001), -5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(decode(Kind::BF16, &[0x80, 0x3f]), vec![1.0]);
    }
}
