//! Every WGSL shader, compiled into the binary. `shaders/<name>.wgsl` holds
//! the entry point `<name>`; a test checks this table lists every file.
//!
//! Helpers shared by several shaders live once under `shaders/lib/`; a
//! shader names the ones it uses in one line near its top, `// import
//! texels`, and [`resolve`] appends them (with the constants the host
//! shares with them) before the source is compiled.
//!
//! Each shader is written once, for the element type `real`, declared by one
//! line `alias real = f32;`. [`instantiate`] makes the f64 version of the
//! same source: it swaps that line (and `const REAL_BYTES: u32 = 4u;`, where
//! a shader sizes a uniform window in bytes), renames the transcendental
//! calls `exp(`/`log(` to the WGSL implementations in
//! `shaders/lib/f64_math.wgsl` and appends that library.

use crate::error::{Error, Result};

/// (name, source) of every shader in `shaders/`.
pub const SHADERS: &[(&str, &str)] = &[
    ("adam_step", include_str!("../shaders/adam_step.wgsl")),
    (
        "add_relu_backward",
        include_str!("../shaders/add_relu_backward.wgsl"),
    ),
    (
        "add_relu_forward",
        include_str!("../shaders/add_relu_forward.wgsl"),
    ),
    ("add_scaled", include_str!("../shaders/add_scaled.wgsl")),
    (
        "avgpool_backward",
        include_str!("../shaders/avgpool_backward.wgsl"),
    ),
    (
        "avgpool_forward",
        include_str!("../shaders/avgpool_forward.wgsl"),
    ),
    (
        "batchnorm_backward_input",
        include_str!("../shaders/batchnorm_backward_input.wgsl"),
    ),
    (
        "batchnorm_backward_params",
        include_str!("../shaders/batchnorm_backward_params.wgsl"),
    ),
    (
        "batchnorm_backward_partials",
        include_str!("../shaders/batchnorm_backward_partials.wgsl"),
    ),
    (
        "batchnorm_forward",
        include_str!("../shaders/batchnorm_forward.wgsl"),
    ),
    (
        "batchnorm_partials",
        include_str!("../shaders/batchnorm_partials.wgsl"),
    ),
    (
        "batchnorm_stats",
        include_str!("../shaders/batchnorm_stats.wgsl"),
    ),
    ("bce_backward", include_str!("../shaders/bce_backward.wgsl")),
    ("bce_forward", include_str!("../shaders/bce_forward.wgsl")),
    (
        "bnpool_backward_input",
        include_str!("../shaders/bnpool_backward_input.wgsl"),
    ),
    (
        "bnpool_backward_partials",
        include_str!("../shaders/bnpool_backward_partials.wgsl"),
    ),
    (
        "bnpool_forward",
        include_str!("../shaders/bnpool_forward.wgsl"),
    ),
    (
        "conv2d_backward_bias",
        include_str!("../shaders/conv2d_backward_bias.wgsl"),
    ),
    (
        "conv2d_backward_input",
        include_str!("../shaders/conv2d_backward_input.wgsl"),
    ),
    (
        "conv2d_backward_weight",
        include_str!("../shaders/conv2d_backward_weight.wgsl"),
    ),
    (
        "conv2d_backward_weight_3x3",
        include_str!("../shaders/conv2d_backward_weight_3x3.wgsl"),
    ),
    (
        "conv2d_backward_weight_3x3_subgroup",
        include_str!("../shaders/conv2d_backward_weight_3x3_subgroup.wgsl"),
    ),
    (
        "conv2d_dilate",
        include_str!("../shaders/conv2d_dilate.wgsl"),
    ),
    (
        "conv2d_forward",
        include_str!("../shaders/conv2d_forward.wgsl"),
    ),
    (
        "conv2d_forward_3x3",
        include_str!("../shaders/conv2d_forward_3x3.wgsl"),
    ),
    (
        "conv2d_pack_weights",
        include_str!("../shaders/conv2d_pack_weights.wgsl"),
    ),
    (
        "dense_backward_bias",
        include_str!("../shaders/dense_backward_bias.wgsl"),
    ),
    (
        "dense_backward_input",
        include_str!("../shaders/dense_backward_input.wgsl"),
    ),
    (
        "dense_backward_weight",
        include_str!("../shaders/dense_backward_weight.wgsl"),
    ),
    (
        "dense_forward",
        include_str!("../shaders/dense_forward.wgsl"),
    ),
    (
        "dropout_backward",
        include_str!("../shaders/dropout_backward.wgsl"),
    ),
    (
        "dropout_forward",
        include_str!("../shaders/dropout_forward.wgsl"),
    ),
    ("exp_log", include_str!("../shaders/exp_log.wgsl")),
    ("fill", include_str!("../shaders/fill.wgsl")),
    (
        "maxpool_backward",
        include_str!("../shaders/maxpool_backward.wgsl"),
    ),
    (
        "maxpool_backward_windows",
        include_str!("../shaders/maxpool_backward_windows.wgsl"),
    ),
    (
        "maxpool_forward",
        include_str!("../shaders/maxpool_forward.wgsl"),
    ),
    (
        "nonfinite_count",
        include_str!("../shaders/nonfinite_count.wgsl"),
    ),
    ("peak_fma", include_str!("../shaders/peak_fma.wgsl")),
    (
        "reduce_partials",
        include_str!("../shaders/reduce_partials.wgsl"),
    ),
    (
        "relu_backward",
        include_str!("../shaders/relu_backward.wgsl"),
    ),
    ("relu_forward", include_str!("../shaders/relu_forward.wgsl")),
    (
        "sigmoid_backward",
        include_str!("../shaders/sigmoid_backward.wgsl"),
    ),
    (
        "sigmoid_forward",
        include_str!("../shaders/sigmoid_forward.wgsl"),
    ),
];

/// log2 of the texels per row (and rows per layer) of a texture copy:
/// `Gpu::read_window` lays copies out with it and `lib/texels.wgsl` reads
/// them with it ([`resolve`] declares it as the default of the pipeline
/// constant `TEX_ROW_BITS`; a smaller layout, `Tuning::texture_row_bits`,
/// sets that constant when the kernel is compiled).
pub const TEX_ROW_BITS: u32 = 12;
/// Texels per row of a texture copy (64 KiB of rgba32float, a multiple of
/// the 256-byte row alignment of buffer-to-texture copies).
pub const TEX_ROW: usize = 1 << TEX_ROW_BITS;
/// Texels per layer of a texture copy.
pub const TEX_LAYER: usize = TEX_ROW * TEX_ROW;

/// (name, source) of every helper library in `shaders/lib/` that shaders
/// import (the f64 maths is appended by [`instantiate`] instead).
pub const LIBRARIES: &[(&str, &str)] = &[
    ("texels", include_str!("../shaders/lib/texels.wgsl")),
    (
        "dropout_mask",
        include_str!("../shaders/lib/dropout_mask.wgsl"),
    ),
    ("bnpool", include_str!("../shaders/lib/bnpool.wgsl")),
    (
        "bnpool_backward",
        include_str!("../shaders/lib/bnpool_backward.wgsl"),
    ),
    (
        "conv2d_rows",
        include_str!("../shaders/lib/conv2d_rows.wgsl"),
    ),
    (
        "conv2d_weight_3x3",
        include_str!("../shaders/lib/conv2d_weight_3x3.wgsl"),
    ),
    ("batchnorm", include_str!("../shaders/lib/batchnorm.wgsl")),
    (
        "maxpool_window",
        include_str!("../shaders/lib/maxpool_window.wgsl"),
    ),
];

/// The libraries a shader names on its `// import a, b` line.
pub fn imports(source: &str) -> Vec<&str> {
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix("// import "))
        .flat_map(|names| names.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// The constants the host shares with a library, as WGSL declarations.
fn shared_constants(library: &str) -> String {
    match library {
        "texels" => format!("override TEX_ROW_BITS: u32 = {TEX_ROW_BITS}u;\n"),
        _ => String::new(),
    }
}

/// `source` (of shader `name`) with the libraries it imports appended: what
/// is compiled. An unknown library is an [`Error::Shader`] naming both.
pub fn resolve(name: &str, source: &str) -> Result<String> {
    let mut out = source.to_string();
    for lib in imports(source) {
        let Some((_, text)) = LIBRARIES.iter().find(|(n, _)| *n == lib) else {
            return Err(Error::Shader {
                shader: format!("shaders/{name}.wgsl"),
                message: format!(
                    "imports `{lib}`, which shaders/lib/ does not hold (it holds: {})",
                    LIBRARIES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        };
        out.push_str(&format!("\n// ---- shaders/lib/{lib}.wgsl\n"));
        out.push_str(&shared_constants(lib));
        out.push_str(text);
    }
    Ok(out)
}

/// Shader `name` read top to bottom in one piece: its source with the
/// libraries it imports written out in place of its import line. What a
/// reader or a mutation tool edits; compiles as the shader itself does (an
/// override of it needs no library).
pub fn standalone(name: &str) -> Result<String> {
    let source = source(name)?;
    let resolved = resolve(name, source)?;
    Ok(resolved
        .lines()
        .filter(|l| !l.trim().starts_with("// import "))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// The embedded source of a shader.
pub fn source(name: &str) -> Result<&'static str> {
    SHADERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::UnknownShader(name.to_string()))
}

/// The element type the kernels are instantiated in: `f32` for training,
/// `f64` for gradient checks at PyTorch's tolerances (`gradcheck --dtype f64`,
/// where the adapter has `SHADER_F64`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    #[default]
    F32,
    F64,
}

impl Precision {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F64 => 8,
        }
    }
    /// The WGSL / Rust type name.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// WGSL implementations of exp and log for f64 (see the file's header).
pub const F64_MATH: &str = include_str!("../shaders/lib/f64_math.wgsl");

/// The lines that name the element type, as written (f32) and in f64.
const PRECISION_LINES: &[(&str, &str)] = &[
    ("alias real = f32;", "alias real = f64;"),
    ("const REAL_BYTES: u32 = 4u;", "const REAL_BYTES: u32 = 8u;"),
];

/// The built-ins that have no f64 version on Vulkan, and their replacements.
const F64_CALLS: &[(&str, &str)] = &[("exp", "exp_f64"), ("log", "log_f64")];

/// The source of a shader in the given precision (unchanged for f32).
pub fn instantiate(source: &str, precision: Precision) -> String {
    if precision == Precision::F32 {
        return source.to_string();
    }
    let mut out = textures_to_storage(source);
    for (f32_line, f64_line) in PRECISION_LINES {
        out = out.replace(f32_line, f64_line);
    }
    let mut uses_math = false;
    for (builtin, replacement) in F64_CALLS {
        let renamed = rename_calls(&out, builtin, replacement);
        uses_math |= renamed != out;
        out = renamed;
    }
    if uses_math {
        out.push('\n');
        out.push_str(F64_MATH);
    }
    out
}

/// Textures hold no f64, so in f64 the inputs that f32 kernels read through
/// texture copies (see `Gpu::read_window`) become storage arrays: each
/// `var NAME: texture_2d_array<f32>;` binding turns into
/// `var<storage, read> NAME: array<real>;`, each call `tex_at(NAME, i)`
/// into `NAME[i]` and each `tex4_at(NAME, k)` (texel k: elements 4k .. 4k+3)
/// into a `vec4<real>` of `NAME[4u * (k)]` .. `NAME[4u * (k) + 3u]` (the
/// host binds the buffer window itself there).
fn textures_to_storage(source: &str) -> String {
    const TEXTURE: &str = ": texture_2d_array<f32>;";
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        let (code, comment) = match line.find("//") {
            Some(c) => line.split_at(c),
            None => (line, ""),
        };
        if let (Some(at), Some(end)) = (code.find("var "), code.find(TEXTURE)) {
            let name = code[at + 4..end].trim();
            out.push_str(&code[..at]);
            out.push_str(&format!("var<storage, read> {name}: array<real>;"));
            out.push_str(&code[end + TEXTURE.len()..]);
            out.push_str(comment);
            continue;
        }
        let mut rest = code;
        while let Some((at, texel)) = next_texture_call(rest) {
            let call = if texel { "tex4_at(" } else { "tex_at(" };
            let head = &rest[..at];
            out.push_str(head);
            let after = &rest[at + call.len()..];
            let is_definition = head.trim_end().ends_with("fn");
            let close = matching_paren(after);
            match (is_definition, after.find(','), close) {
                (false, Some(comma), Some(close)) if comma < close => {
                    let name = after[..comma].trim();
                    let index = after[comma + 1..close].trim();
                    if texel {
                        let e = |j: usize| format!("{name}[4u * ({index}) + {j}u]");
                        out.push_str(&format!(
                            "vec4<real>({name}[4u * ({index})], {}, {}, {})",
                            e(1),
                            e(2),
                            e(3)
                        ));
                    } else {
                        out.push_str(&format!("{name}[{index}]"));
                    }
                    rest = &after[close + 1..];
                }
                _ => {
                    out.push_str(call);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    out
}

/// The first `tex_at(` or `tex4_at(` in `s`: its byte index, and whether it
/// reads a whole texel (`tex4_at`).
fn next_texture_call(s: &str) -> Option<(usize, bool)> {
    let one = s.find("tex_at(").map(|i| (i, false));
    let four = s.find("tex4_at(").map(|i| (i, true));
    match (one, four) {
        (Some(a), Some(b)) => Some(if a.0 < b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// The byte index of the `)` that closes an already opened `(` in `s`.
fn matching_paren(s: &str) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Renames calls `name(` to `replacement(` where `name` is a whole identifier
/// (not the tail of `fast_exp(` or a field `.exp(`), outside `//` comments.
fn rename_calls(source: &str, name: &str, replacement: &str) -> String {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    let pattern = format!("{name}(");
    let mut out = String::with_capacity(source.len());
    for line in source.split_inclusive('\n') {
        let (code, comment) = match line.find("//") {
            Some(c) => line.split_at(c),
            None => (line, ""),
        };
        let mut rest = code;
        while let Some(at) = rest.find(&pattern) {
            let before = rest[..at].chars().next_back();
            out.push_str(&rest[..at]);
            if before.is_some_and(ident) {
                out.push_str(&pattern);
            } else {
                out.push_str(replacement);
                out.push('(');
            }
            rest = &rest[at + pattern.len()..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    out
}
