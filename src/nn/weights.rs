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
mod pth {
    use super::*;

    /// A value on the pickle machine's stack.
    #[derive(Clone, Debug)]
    enum V {
        None,
        Bool,
        Int(i64),
        Float,
        Str(String),
        Tuple(Vec<V>),
        List(Vec<V>),
        Dict(Vec<(V, V)>),
        Global(String, String),
        /// A persistent id: storage key, its element type.
        Storage(String, Kind),
        Tensor {
            key: String,
            kind: Kind,
            offset: usize,
            shape: Vec<usize>,
            stride: Vec<usize>,
        },
        /// The result of a call this reader does not model (kept opaque).
        Opaque,
        Mark,
    }

    fn as_usizes(v: &V) -> Option<Vec<usize>> {
        match v {
            V::Tuple(items) | V::List(items) => items
                .iter()
                .map(|i| match i {
                    V::Int(n) if *n >= 0 => Some(*n as usize),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    pub(super) fn read(path: &Path, bytes: &[u8]) -> Result<StateDict> {
        let bad = |m: String| err(path, m);
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| bad(format!("a zip that cannot be read ({e}); is it truncated?")))?;
        let pkl = (0..zip.len())
            .filter_map(|i| zip.name_for_index(i).map(str::to_string))
            .find(|n| n.ends_with("data.pkl"))
            .ok_or_else(|| bad("a zip without data.pkl: not written by torch.save".into()))?;
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let mut program = Vec::new();
        zip.by_name(&pkl)
            .and_then(|mut f| f.read_to_end(&mut program).map_err(Into::into))
            .map_err(|e| bad(format!("{pkl}: {e}")))?;
        let dict = unpickle(&program).map_err(|m| bad(format!("{pkl}: {m}")))?;
        let V::Dict(items) = dict else {
            return Err(bad(format!(
                "{pkl} holds no dict of tensors (a whole pickled model?); save the \
                 state_dict: torch.save(model.state_dict(), path)"
            )));
        };
        let mut out = StateDict::new();
        for (k, v) in items {
            let V::Str(name) = k else { continue };
            let V::Tensor {
                key,
                kind,
                offset,
                shape,
                stride,
            } = v
            else {
                if name.ends_with("num_batches_tracked") {
                    continue;
                }
                return Err(bad(format!("entry `{name}` is not a tensor")));
            };
            let entry = format!("{prefix}data/{key}");
            let mut raw = Vec::new();
            zip.by_name(&entry)
                .and_then(|mut f| f.read_to_end(&mut raw).map_err(Into::into))
                .map_err(|e| bad(format!("`{name}`: storage {entry}: {e}")))?;
            let storage = decode(kind, &raw);
            let numel: usize = shape.iter().product();
            let mut values = Vec::with_capacity(numel);
            // gather through the strides (contiguous in practice)
            let mut index = vec![0usize; shape.len()];
            for _ in 0..numel {
                let at = offset + index.iter().zip(&stride).map(|(i, s)| i * s).sum::<usize>();
                let v = storage.get(at).copied().ok_or_else(|| {
                    bad(format!(
                        "`{name}`: storage {entry} holds {} values, the tensor reads past them \
                         (truncated?)",
                        storage.len()
                    ))
                })?;
                values.push(v);
                for d in (0..shape.len()).rev() {
                    index[d] += 1;
                    if index[d] < shape[d] {
                        break;
                    }
                    index[d] = 0;
                }
            }
            let dtype = match kind {
                Kind::F32 => "F32",
                Kind::F16 => "F16",
                Kind::BF16 => "BF16",
            };
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

    /// Runs the pickle program far enough to build a dict of tensors.
    fn unpickle(p: &[u8]) -> std::result::Result<V, String> {
        let mut stack: Vec<V> = Vec::new();
        let mut memo: std::collections::HashMap<u32, V> = Default::default();
        let mut i = 0usize;
        let take = |i: &mut usize, n: usize| -> std::result::Result<&[u8], String> {
            let s = p
                .get(*i..*i + n)
                .ok_or_else(|| "the pickle ends early (truncated?)".to_string())?;
            *i += n;
            Ok(s)
        };
        let line = |i: &mut usize| -> std::result::Result<String, String> {
            let end = p[*i..]
                .iter()
                .position(|&b| b == b'\n')
                .ok_or("the pickle ends early (truncated?)")?;
            let s = String::from_utf8_lossy(&p[*i..*i + end]).to_string();
            *i += end + 1;
            Ok(s)
        };
        let pop_mark = |stack: &mut Vec<V>| -> std::result::Result<Vec<V>, String> {
            let m = stack
                .iter()
                .rposition(|v| matches!(v, V::Mark))
                .ok_or("a pickle MARK is missing")?;
            let items = stack.split_off(m + 1);
            stack.pop();
            Ok(items)
        };
        let u32le = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        loop {
            let op = *take(&mut i, 1)?.first().unwrap_or(&0);
            match op {
                0x80 => {
                    take(&mut i, 1)?; // PROTO
                }
                0x95 => {
                    take(&mut i, 8)?; // FRAME
                }
                b'.' => return stack.pop().ok_or_else(|| "empty pickle".into()), // STOP
                b'}' => stack.push(V::Dict(vec![])),
                b']' => stack.push(V::List(vec![])),
                b')' => stack.push(V::Tuple(vec![])),
                b'N' => stack.push(V::None),
                0x88 | 0x89 => stack.push(V::Bool), // NEWTRUE, NEWFALSE
                b'(' => stack.push(V::Mark),
                b'J' => {
                    let b = take(&mut i, 4)?;
                    stack.push(V::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64))
                }
                b'K' => {
                    let b = take(&mut i, 1)?[0];
                    stack.push(V::Int(b as i64))
                }
                b'M' => {
                    let b = take(&mut i, 2)?;
                    stack.push(V::Int(u16::from_le_bytes([b[0], b[1]]) as i64))
                }
                0x8a => {
                    // LONG1
                    let n = take(&mut i, 1)?[0] as usize;
                    let b = take(&mut i, n)?;
                    let mut v: i64 = 0;
                    for (k, &byte) in b.iter().enumerate().take(8) {
                        v |= (byte as i64) << (8 * k);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    stack.push(V::Int(v))
                }
                b'G' => {
                    take(&mut i, 8)?; // BINFLOAT: no float matters to a state_dict
                    stack.push(V::Float)
                }
                b'X' => {
                    let n = u32le(take(&mut i, 4)?) as usize;
                    let s = String::from_utf8_lossy(take(&mut i, n)?).to_string();
                    stack.push(V::Str(s))
                }
                0x8c => {
                    let n = take(&mut i, 1)?[0] as usize;
                    let s = String::from_utf8_lossy(take(&mut i, n)?).to_string();
                    stack.push(V::Str(s))
                }
                b'U' => {
                    let n = take(&mut i, 1)?[0] as usize;
                    let s = String::from_utf8_lossy(take(&mut i, n)?).to_string();
                    stack.push(V::Str(s))
                }
                b'c' => {
                    let module = line(&mut i)?;
                    let name = line(&mut i)?;
                    stack.push(V::Global(module, name))
                }
                0x93 => {
                    // STACK_GLOBAL
                    let (Some(V::Str(name)), Some(V::Str(module))) = (stack.pop(), stack.pop())
                    else {
                        return Err("STACK_GLOBAL without two names".into());
                    };
                    stack.push(V::Global(module, name))
                }
                b'q' => {
                    let k = take(&mut i, 1)?[0] as u32;
                    memo.insert(k, stack.last().cloned().ok_or("BINPUT on an empty stack")?);
                }
                b'r' => {
                    let k = u32le(take(&mut i, 4)?);
                    memo.insert(
                        k,
                        stack
                            .last()
                            .cloned()
                            .ok_or("LONG_BINPUT on an empty stack")?,
                    );
                }
                0x94 => {
                    let k = memo.len() as u32; // MEMOIZE
                    memo.insert(k, stack.last().cloned().ok_or("MEMOIZE on an empty stack")?);
                }
                b'h' => {
                    let k = take(&mut i, 1)?[0] as u32;
                    stack.push(memo.get(&k).cloned().ok_or("BINGET of an unknown memo")?)
                }
                b'j' => {
                    let k = u32le(take(&mut i, 4)?);
                    stack.push(
                        memo.get(&k)
                            .cloned()
                            .ok_or("LONG_BINGET of an unknown memo")?,
                    )
                }
                b't' => {
                    let items = pop_mark(&mut stack)?;
                    stack.push(V::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err("TUPLE with too few items".into());
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(V::Tuple(items))
                }
                b'a' | b'e' => {
                    let items = if op == b'e' {
                        pop_mark(&mut stack)?
                    } else {
                        vec![stack.pop().ok_or("APPEND on an empty stack")?]
                    };
                    match stack.last_mut() {
                        Some(V::List(l)) => l.extend(items),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b's' | b'u' => {
                    let items = if op == b'u' {
                        pop_mark(&mut stack)?
                    } else {
                        let v = stack.pop().ok_or("SETITEM on an empty stack")?;
                        let k = stack.pop().ok_or("SETITEM on an empty stack")?;
                        vec![k, v]
                    };
                    match stack.last_mut() {
                        Some(V::Dict(d)) => {
                            let mut it = items.into_iter();
                            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                                d.push((k, v));
                            }
                        }
                        _ => return Err("SETITEMS on a non-dict".into()),
                    }
                }
                b'Q' => {
                    // BINPERSID: ('storage', type, key, location, numel)
                    let pid = stack.pop().ok_or("BINPERSID on an empty stack")?;
                    let V::Tuple(t) = pid else {
                        return Err("a persistent id that is not a tuple".into());
                    };
                    let (Some(V::Global(_, ty)), Some(V::Str(key))) = (t.get(1), t.get(2)) else {
                        return Err("a persistent id that is not a storage".into());
                    };
                    let kind = match ty.as_str() {
                        "FloatStorage" => Kind::F32,
                        "HalfStorage" => Kind::F16,
                        "BFloat16Storage" => Kind::BF16,
                        // counters (num_batches_tracked) and the like
                        _ => {
                            stack.push(V::Opaque);
                            continue;
                        }
                    };
                    stack.push(V::Storage(key.clone(), kind))
                }
                b'R' => {
                    // REDUCE: callable, args
                    let args = stack.pop().ok_or("REDUCE on an empty stack")?;
                    let f = stack.pop().ok_or("REDUCE on an empty stack")?;
                    let V::Tuple(a) = args else {
                        return Err("REDUCE without an argument tuple".into());
                    };
                    let v = match f {
                        V::Global(m, n) if m == "collections" && n == "OrderedDict" => {
                            V::Dict(vec![])
                        }
                        V::Global(m, n) if m == "torch._utils" && n == "_rebuild_tensor_v2" => {
                            match (a.first(), a.get(1), a.get(2), a.get(3)) {
                                (
                                    Some(V::Storage(key, kind)),
                                    Some(V::Int(o)),
                                    Some(s),
                                    Some(st),
                                ) => V::Tensor {
                                    key: key.clone(),
                                    kind: *kind,
                                    offset: *o as usize,
                                    shape: as_usizes(s)
                                        .ok_or("a tensor size that is not a tuple")?,
                                    stride: as_usizes(st)
                                        .ok_or("a tensor stride that is not a tuple")?,
                                },
                                _ => V::Opaque,
                            }
                        }
                        _ => V::Opaque,
                    };
                    stack.push(v)
                }
                b'b' => {
                    stack.pop().ok_or("BUILD on an empty stack")?; // state: ignored
                }
                other => {
                    return Err(format!(
                        "pickle opcode 0x{other:02x} at byte {} is not one torch.save writes for a \
                         state_dict",
                        i - 1
                    ))
                }
            }
        }
    }
}

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
