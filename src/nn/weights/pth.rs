//! The `.pth` reader: the zip, the pickle's opcodes that `torch.save` writes
//! for a dict of tensors, and the storages.

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
                let (Some(V::Str(name)), Some(V::Str(module))) = (stack.pop(), stack.pop()) else {
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
                    V::Global(m, n) if m == "collections" && n == "OrderedDict" => V::Dict(vec![]),
                    V::Global(m, n) if m == "torch._utils" && n == "_rebuild_tensor_v2" => {
                        match (a.first(), a.get(1), a.get(2), a.get(3)) {
                            (Some(V::Storage(key, kind)), Some(V::Int(o)), Some(s), Some(st)) => {
                                V::Tensor {
                                    key: key.clone(),
                                    kind: *kind,
                                    offset: *o as usize,
                                    shape: as_usizes(s)
                                        .ok_or("a tensor size that is not a tuple")?,
                                    stride: as_usizes(st)
                                        .ok_or("a tensor stride that is not a tuple")?,
                                }
                            }
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
