//! Every shader is embedded, valid WGSL on its own, documented, instantiable
//! in f32/f64 by its alias line, listed once in the op registry, and
//! mirrored field by field by a host uniform struct; every one compiles on
//! the adapter.

use postergrad::gpu::Uniform;
use postergrad::ops::{
    exp_log::{exp_log, Transcendental},
    registry, FillParams,
};
use postergrad::shaders::{instantiate, resolve, F64_MATH, LIBRARIES, SHADERS};
use postergrad::{Gpu, Precision, Tensor};
use wgpu::naga;

mod common;
use common::f64_gpu;

fn shader_files() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn every_shader_file_is_embedded() {
    let embedded: Vec<String> = SHADERS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        shader_files(),
        embedded,
        "src/shaders.rs must list every shaders/*.wgsl"
    );
    for (name, src) in SHADERS {
        let on_disk = std::fs::read_to_string(format!(
            "{}/shaders/{name}.wgsl",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(&on_disk, src, "{name}: embedded source is stale");
    }
}

fn parse(name: &str, src: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
    module
}

#[test]
fn every_shader_is_valid_wgsl_with_its_own_entry_point_and_header() {
    for (name, src) in SHADERS {
        let module = parse(name, &resolve(name, src).unwrap());
        assert_eq!(module.entry_points.len(), 1, "{name}: one kernel per file");
        assert_eq!(
            module.entry_points[0].name, *name,
            "{name}: entry point named after the file"
        );
        let first = src.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("// {name}:")),
            "{name}: must open with '// {name}: <formula>', got {first:?}"
        );
        assert!(
            src.contains("Thread mapping"),
            "{name}: header must state the thread mapping"
        );
        assert!(
            src.contains("Bounds"),
            "{name}: header must state the bounds rule"
        );
        assert_eq!(
            src.matches("alias real = f32;").count(),
            1,
            "{name}: the element type comes from one alias line"
        );
    }
}

/// The definition of function `f` in `src`, comments dropped and white
/// space folded (None where `src` has none).
fn definition(src: &str, f: &str) -> Option<String> {
    let start = src.find(&format!("\nfn {f}("))?;
    let end = src[start..].find("\n}").map(|e| start + e + 2)?;
    let code: Vec<&str> = src[start..end]
        .lines()
        .map(|l| l.split("//").next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    Some(code.join(" "))
}

#[test]
fn shared_helpers_live_once_in_the_library_and_each_is_imported() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/lib");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .filter(|n| n != "f64_math")
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = LIBRARIES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "src/shaders.rs LIBRARIES must list every shaders/lib/*.wgsl"
    );
    // Every library is used, every import names one, and no shader keeps
    // its own copy of a library function or the texture layout's numbers.
    for (lib, text) in LIBRARIES {
        assert!(
            SHADERS
                .iter()
                .any(|(_, s)| postergrad::shaders::imports(s).contains(lib)),
            "shaders/lib/{lib}.wgsl is imported by no shader"
        );
        let functions: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("fn "))
            .map(|l| l.split('(').next().unwrap())
            .collect();
        assert!(!functions.is_empty(), "{lib}");
        for (name, src) in SHADERS {
            for f in &functions {
                assert!(
                    definition(src, f).is_none() || definition(src, f) != definition(text, f),
                    "{name}.wgsl holds a copy of {f}, which shaders/lib/{lib}.wgsl holds: import it"
                );
            }
            if functions
                .iter()
                .any(|f| calls(src, f) && definition(src, f).is_none())
            {
                assert!(
                    postergrad::shaders::imports(src).contains(lib),
                    "{name}.wgsl calls {lib} functions without `// import {lib}`"
                );
            }
        }
    }
    for (name, src) in SHADERS {
        for number in ["4095u", ">> 12u", ">> 24u"] {
            assert!(
                !src.contains(number),
                "{name}.wgsl hard-codes the texture layout ({number}): use lib/texels.wgsl"
            );
        }
    }
    // The layout's one number reaches the shader from the host, as the
    // default of a pipeline constant (a tuning sets a smaller layout).
    let conv = resolve(
        "conv2d_forward",
        postergrad::shaders::source("conv2d_forward").unwrap(),
    )
    .unwrap();
    assert!(conv.contains(&format!(
        "override TEX_ROW_BITS: u32 = {}u;",
        postergrad::shaders::TEX_ROW_BITS
    )));
    assert_eq!(
        postergrad::gpu::TEX_ROW,
        1 << postergrad::shaders::TEX_ROW_BITS
    );
    let err = resolve("x", "// import nowhere\n").unwrap_err().to_string();
    assert!(
        err.contains("shaders/x.wgsl")
            && err
                .contains("imports `nowhere`, which shaders/lib/ does not hold (it holds: texels, dropout_mask, bnpool, bnpool_backward, conv2d_rows, conv2d_weight_3x3, batchnorm, maxpool_window)"),
        "{err}"
    );
}

#[test]
fn every_shader_validates_when_instantiated_in_f64() {
    for (name, src) in SHADERS {
        // The non-finite guard reads f32 bits and says so ("f32 only").
        if src.contains("f32 only:") {
            continue;
        }
        let f64_src = instantiate(&resolve(name, src).unwrap(), Precision::F64);
        assert!(f64_src.contains("alias real = f64;"), "{name}");
        for builtin in ["exp", "log"] {
            assert!(
                !calls(&f64_src, builtin),
                "{name}: f64 {builtin} must come from shaders/lib/f64_math.wgsl"
            );
        }
        parse(&format!("{name} (f64)"), &f64_src);
    }
    // only the shaders that call exp/log get the library
    let relu = postergrad::shaders::source("relu_forward").unwrap();
    assert!(instantiate(relu, Precision::F64).len() < relu.len() + 64);
    assert!(instantiate(
        postergrad::shaders::source("sigmoid_forward").unwrap(),
        Precision::F64
    )
    .contains("fn exp_f64("));
}

#[test]
fn f64_reads_storage_where_f32_reads_texture_copies() {
    // textures hold no f64: the kernels' texture inputs become storage
    // arrays, every tex_at(name, index) plain indexing and every
    // tex4_at(name, texel) a vec4 of four elements, comments untouched
    let textured: Vec<_> = SHADERS
        .iter()
        .filter(|(name, _)| {
            let src = postergrad::shaders::standalone(name).unwrap();
            let code: Vec<&str> = src.lines().filter(|l| !l.starts_with("fn tex")).collect();
            let code = code.join("\n");
            calls(&code, "tex_at") || calls(&code, "tex4_at")
        })
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(
        textured,
        [
            "adam_step",
            "batchnorm_backward_input",
            "batchnorm_backward_partials",
            "batchnorm_partials",
            "bnpool_backward_input",
            "bnpool_backward_partials",
            "bnpool_forward",
            "conv2d_backward_weight_3x3",
            "conv2d_backward_weight_3x3_subgroup",
            "conv2d_forward",
            "conv2d_forward_3x3",
            "dense_backward_input",
            "dense_backward_weight",
            "dense_forward",
            "nonfinite_count"
        ]
    );
    for name in textured {
        let src = postergrad::shaders::source(name).unwrap();
        let f64_src = instantiate(&resolve(name, src).unwrap(), Precision::F64);
        let code: String = f64_src
            .lines()
            .map(|l| l.split("//").next().unwrap())
            .collect();
        assert!(!code.contains("texture_2d_array<f32>;"), "{name}");
        // every texture binding is a storage array of the same name
        for line in src
            .lines()
            .filter(|l| l.contains(": texture_2d_array<f32>;"))
        {
            let texture = line
                .split("var ")
                .nth(1)
                .unwrap()
                .split(':')
                .next()
                .unwrap();
            assert!(
                code.contains(&format!("var<storage, read> {texture}: array<real>;")),
                "{name}: {texture}"
            );
        }
        // the definitions stay (unused), no call is left
        for f in ["tex_at(", "tex4_at("] {
            assert_eq!(
                code.matches(f).count(),
                code.matches(&format!("fn {f}")).count(),
                "{name}: {f}"
            );
        }
        assert!(
            code.contains("fn tex_at(") || code.contains("fn tex4_at("),
            "{name}"
        );
    }
    let toy = "@group(0) @binding(1) var dy: texture_2d_array<f32>; // dy\n\
               fn tex_at(t: texture_2d_array<f32>, i: u32) -> real { return 0.0; }\n\
               let g = tex_at(dy, idx(a, min(b, 2u))) + tex_at( dy ,j); // tex_at(dy, 1)\n";
    assert_eq!(
        instantiate(toy, Precision::F64),
        "@group(0) @binding(1) var<storage, read> dy: array<real>; // dy\n\
         fn tex_at(t: texture_2d_array<f32>, i: u32) -> real { return 0.0; }\n\
         let g = dy[idx(a, min(b, 2u))] + dy[j]; // tex_at(dy, 1)\n"
    );
    assert_eq!(
        instantiate("let r = tex4_at(x, u32(k + 1)).y;\n", Precision::F64),
        "let r = vec4<real>(x[4u * (u32(k + 1))], x[4u * (u32(k + 1)) + 1u], \
         x[4u * (u32(k + 1)) + 2u], x[4u * (u32(k + 1)) + 3u]).y;\n"
    );
}

/// Whether the code (comments stripped) calls the function `name`.
fn calls(src: &str, name: &str) -> bool {
    src.lines().any(|line| {
        let code = line.split("//").next().unwrap();
        code.match_indices(&format!("{name}(")).any(|(at, _)| {
            !code[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        })
    })
}

#[test]
fn the_f64_math_library_is_valid_wgsl_on_its_own() {
    let module = parse("lib/f64_math", F64_MATH);
    assert!(module.entry_points.is_empty());
    let names: Vec<_> = module
        .functions
        .iter()
        .filter_map(|(_, f)| f.name.clone())
        .collect();
    for f in ["exp_f64", "log_f64", "exp2_int_f64"] {
        assert!(names.iter().any(|n| n == f), "{f} missing: {names:?}");
    }
}

/// exp over [−708, 709] (normal results) and log over [1e-300, 1e300] on
/// the GPU: (inputs as the device holds them — f32 rounds them —, results).
struct ExpLogSamples {
    xs: Vec<f64>,
    exp: Vec<f64>,
    ls: Vec<f64>,
    log: Vec<f64>,
}

fn exp_log_samples(gpu: &Gpu) -> ExpLogSamples {
    let n = 20_000;
    let xs: Vec<f64> = (0..n)
        .map(|i| -708.0 + 1417.0 * i as f64 / (n - 1) as f64)
        .collect();
    let ls: Vec<f64> = (0..n)
        .map(|i| 10f64.powf(-300.0 + 600.0 * i as f64 / (n - 1) as f64))
        .collect();
    let x = Tensor::from_slice(gpu, [n], &xs).unwrap();
    let l = Tensor::from_slice(gpu, [n], &ls).unwrap();
    let exp = exp_log(gpu, &x, Transcendental::Exp).unwrap();
    let log = exp_log(gpu, &l, Transcendental::Log).unwrap();
    ExpLogSamples {
        xs: x.to_vec_f64(gpu).unwrap(),
        exp: exp.to_vec_f64(gpu).unwrap(),
        ls: l.to_vec_f64(gpu).unwrap(),
        log: log.to_vec_f64(gpu).unwrap(),
    }
}

/// exp and log on the GPU against Rust's, element by element; returns the
/// largest relative error of each.
fn transcendental_errors(gpu: &Gpu, s: &ExpLogSamples) -> (f64, f64) {
    let (xs, ls) = (&s.xs, &s.ls);
    let rel = |got: &[f64], want: &[f64]| {
        got.iter()
            .zip(want)
            .map(|(g, w)| ((g - w) / w).abs())
            .fold(0.0f64, |m, e| {
                m.max(if e.is_nan() { f64::INFINITY } else { e })
            })
    };
    let want_exp: Vec<f64> = xs.iter().map(|v| v.exp()).collect();
    let want_log: Vec<f64> = ls.iter().map(|v| v.ln()).collect();
    let (got_exp, got_log) = (&s.exp, &s.log);
    if gpu.precision() == Precision::F32 {
        // f32 overflows past ±88: compare where f32 holds the result
        let n = xs.len();
        let keep: Vec<usize> = (0..n).filter(|&i| xs[i].abs() < 80.0).collect();
        let pick = |v: &[f64], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let keep_log: Vec<usize> = (0..n).filter(|&i| ls[i] > 1e-37 && ls[i] < 1e38).collect();
        return (
            rel(&pick(got_exp, &keep), &pick(&want_exp, &keep)),
            rel(&pick(got_log, &keep_log), &pick(&want_log, &keep_log)),
        );
    }
    (rel(got_exp, &want_exp), rel(got_log, &want_log))
}

/// exp_f64's largest relative error against `1e-15 + |x|·2⁻⁵³`, as a ratio
/// (≤ 1 passes), with its argument, and the largest error for |x| < 1.
///
/// Why |x|: the reduction r = (x − k·LN2_HI) − k·LN2_LO is exact only if
/// the driver keeps that order. NVIDIA's Vulkan driver (H100, 580.159)
/// evidently rounds k·ln 2 once instead: its error grows with |x| (1.9e-16
/// below 1, 3.4e-15 below 100, 2.4e-14 at 708), which is |k·ln 2|·2⁻⁵³ at
/// most; lavapipe stays at 2.2e-16 everywhere.
fn exp_f64_error(s: &ExpLogSamples) -> (f64, f64, f64) {
    let (mut ratio, mut worst, mut small) = (0.0f64, 0.0, 0.0f64);
    for (x, g) in s.xs.iter().zip(&s.exp) {
        let e = ((g - x.exp()) / x.exp()).abs();
        let e = if e.is_nan() { f64::INFINITY } else { e };
        let r = e / (1e-15 + x.abs() * f64::EPSILON / 2.0);
        if r > ratio {
            (ratio, worst) = (r, *x);
        }
        if x.abs() < 1.0 {
            small = small.max(e);
        }
    }
    (ratio, worst, small)
}

#[test]
fn f64_exp_and_log_in_wgsl_match_rust_to_a_few_ulps() {
    let Some(gpu) = f64_gpu() else { return };
    let samples = exp_log_samples(&gpu);
    let (exp_err, log_err) = transcendental_errors(&gpu, &samples);
    eprintln!("f64 exp max rel error {exp_err:.2e}, log {log_err:.2e}");
    let (ratio, worst, small) = exp_f64_error(&samples);
    assert!(
        ratio <= 1.0,
        "exp_f64: relative error {:.2e} at x = {worst}, over 1e-15 + |x|·2^-53",
        ratio * (1e-15 + worst.abs() * f64::EPSILON / 2.0)
    );
    assert!(
        small < 1e-15,
        "exp_f64: relative error {small:e} for |x| < 1"
    );
    assert!(log_err < 1e-15, "log_f64: max relative error {log_err:e}");

    // special values
    let x = Tensor::from_slice(&gpu, [5], &[0.0f64, -800.0, 800.0, -1e-320, 1.0]).unwrap();
    let e = exp_log(&gpu, &x, Transcendental::Exp)
        .unwrap()
        .to_vec_f64(&gpu)
        .unwrap();
    assert_eq!(e[0], 1.0);
    assert_eq!(e[1], 0.0);
    assert_eq!(e[2], f64::INFINITY);
    assert!((e[4] - std::f64::consts::E).abs() <= f64::EPSILON * std::f64::consts::E);
    let y = Tensor::from_slice(&gpu, [4], &[0.0f64, -1.0, 1.0, 5e-324]).unwrap();
    let l = exp_log(&gpu, &y, Transcendental::Log)
        .unwrap()
        .to_vec_f64(&gpu)
        .unwrap();
    assert_eq!(l[0], f64::NEG_INFINITY);
    assert!(l[1].is_nan());
    assert_eq!(l[2], 0.0);
    assert!(
        (l[3] - 5e-324f64.ln()).abs() < 1e-12,
        "log of the smallest subnormal: {}",
        l[3]
    );
}

#[test]
fn f32_exp_and_log_are_the_builtins_within_f32_rounding() {
    let gpu = Gpu::new().unwrap();
    let (exp_err, log_err) = transcendental_errors(&gpu, &exp_log_samples(&gpu));
    eprintln!("f32 exp max rel error {exp_err:.2e}, log {log_err:.2e}");
    // an f32 result carries at least half an ulp (6e-8) of rounding
    assert!(exp_err < 1e-5, "exp: {exp_err:e}");
    assert!(log_err < 1e-5, "log: {log_err:e}");
}

/// The members of a WGSL struct type as (name, offset), nested structs
/// flattened.
fn wgsl_fields(
    module: &naga::Module,
    ty: naga::Handle<naga::Type>,
    base: u32,
    out: &mut Vec<(String, usize)>,
) {
    match &module.types[ty].inner {
        naga::TypeInner::Struct { members, .. } => {
            for m in members {
                match &module.types[m.ty].inner {
                    naga::TypeInner::Struct { .. } => {
                        wgsl_fields(module, m.ty, base + m.offset, out)
                    }
                    _ => out.push((
                        m.name.clone().unwrap_or_default(),
                        (base + m.offset) as usize,
                    )),
                }
            }
        }
        other => panic!("params is not a struct: {other:?}"),
    }
}

/// Padding (names starting with `_`) carries no meaning: only the size
/// checks it.
fn meaningful(fields: impl IntoIterator<Item = (String, usize)>) -> Vec<(String, usize)> {
    fields
        .into_iter()
        .filter(|(n, _)| !n.starts_with('_'))
        .collect()
}

#[test]
fn every_shader_has_one_registry_entry_and_every_entry_a_shader() {
    let registered: Vec<&str> = registry::kernels().map(|(_, k)| k.name).collect();
    for (name, _) in SHADERS {
        assert_eq!(
            registered.iter().filter(|k| *k == name).count(),
            1,
            "{name}: list it once in src/ops/registry.rs"
        );
    }
    for k in &registered {
        assert!(
            SHADERS.iter().any(|(n, _)| n == k),
            "registry kernel {k} has no shaders/{k}.wgsl"
        );
    }
}

#[test]
fn uniform_structs_match_their_host_mirrors_field_by_field() {
    for (op, k) in registry::kernels() {
        let src = SHADERS.iter().find(|(n, _)| *n == k.name).unwrap().1;
        let module = parse(k.name, &resolve(k.name, src).unwrap());
        let (_, var) = module
            .global_variables
            .iter()
            .find(|(_, v)| {
                v.space == naga::AddressSpace::Uniform
                    && v.binding.as_ref().is_some_and(|b| b.binding == 0)
            })
            .unwrap_or_else(|| panic!("{}: no uniform params at @binding(0)", k.name));
        let binding = var.binding.as_ref().unwrap();
        assert_eq!(binding.group, 0, "{}: params in @group(0)", k.name);
        let size = module.types[var.ty].inner.size(module.to_ctx()) as usize;
        assert_eq!(
            size, k.size,
            "{} (op {}): WGSL params struct is {size} bytes, host mirror {} is {}",
            k.name, op.name, k.params, k.size
        );
        assert_eq!(
            size % 16,
            0,
            "{}: uniform structs are padded to 16 bytes",
            k.name
        );
        let mut wgsl = Vec::new();
        wgsl_fields(&module, var.ty, 0, &mut wgsl);
        let host = meaningful((k.layout)().into_iter().map(|(n, o)| (n.to_string(), o)));
        assert_eq!(
            meaningful(wgsl),
            host,
            "{}: the WGSL params fields (left) differ from the host mirror {} (right)",
            k.name,
            k.params
        );
    }
}

#[test]
fn the_field_check_catches_two_swapped_fields() {
    // The check's own strength: `fill` with `n` and `base` swapped in the
    // WGSL has the same size but other fields at each offset.
    let src = SHADERS.iter().find(|(n, _)| *n == "fill").unwrap().1;
    let swapped = src
        .replacen("n: u32", "tmp_swap: u32", 1)
        .replacen("base: u32", "n: u32", 1)
        .replacen("tmp_swap: u32", "base: u32", 1);
    assert_ne!(
        src, swapped,
        "fill's params changed shape: update this test"
    );
    let module = parse("fill (swapped)", &resolve("fill", &swapped).unwrap());
    let (_, var) = module
        .global_variables
        .iter()
        .find(|(_, v)| v.space == naga::AddressSpace::Uniform)
        .unwrap();
    let mut wgsl = Vec::new();
    wgsl_fields(&module, var.ty, 0, &mut wgsl);
    let host = meaningful(
        FillParams::layout()
            .into_iter()
            .map(|(n, o)| (n.to_string(), o)),
    );
    assert_ne!(meaningful(wgsl), host);
}

#[test]
fn every_shader_compiles_on_the_adapter() {
    let gpu = Gpu::new().unwrap();
    for (name, _) in SHADERS {
        gpu.compile(name).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_shader_compiles_in_f64_where_the_adapter_has_shader_f64() {
    let Some(gpu) = f64_gpu() else { return };
    for (name, src) in SHADERS {
        if src.contains("f32 only:") {
            continue;
        }
        gpu.compile(name).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_broken_shader_is_a_clear_error_naming_the_file() {
    let gpu = Gpu::new().unwrap();
    gpu.override_shader("relu_forward", "fn nope( {".into())
        .unwrap();
    let err = gpu.compile("relu_forward").unwrap_err().to_string();
    assert!(err.contains("shaders/relu_forward.wgsl"), "{err}");
    let err = gpu.compile("no_such_kernel").unwrap_err().to_string();
    assert!(err.contains("no shader named 'no_such_kernel'"), "{err}");
}
