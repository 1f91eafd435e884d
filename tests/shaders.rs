//! Every shader is embedded, valid WGSL on its own, documented, instantiable
//! in f32/f64 by its alias line, and mirrored by a host uniform struct of the
//! same size; every one compiles on the adapter.

use std::mem::size_of;

use postergrad::ops::{
    adam::AdamParams,
    batchnorm::BnParams,
    bce::BceParams,
    conv2d::{ConvForwardParams, ConvParams, PackParams, ReduceParams},
    dense::DenseParams,
    dropout::DropoutParams,
    maxpool::PoolParams,
    nonfinite::NonfiniteParams,
    AddScaledParams, ElementwiseParams, FillParams,
};
use postergrad::profile::PeakParams;
use postergrad::shaders::SHADERS;
use postergrad::Gpu;
use wgpu::naga;

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
        let module = parse(name, src);
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

#[test]
fn every_shader_validates_as_f64_by_changing_the_alias_line() {
    for (name, src) in SHADERS {
        // transcendental built-ins have no f64 overloads; those shaders get
        // WGSL implementations in the f64 gradient-check mode.
        // The non-finite guard reads f32 bits and says so ("f32 only").
        if src.contains("exp(") || src.contains("log(") || src.contains("f32 only:") {
            continue;
        }
        let f64_src = src.replace("alias real = f32;", "alias real = f64;");
        parse(name, &f64_src);
    }
}

#[test]
fn uniform_structs_match_their_host_mirrors() {
    let host: &[(&str, usize)] = &[
        ("adam_step", size_of::<AdamParams>()),
        ("add_scaled", size_of::<AddScaledParams>()),
        ("batchnorm_backward_input", size_of::<BnParams>()),
        ("batchnorm_backward_params", size_of::<BnParams>()),
        ("batchnorm_backward_partials", size_of::<BnParams>()),
        ("batchnorm_forward", size_of::<BnParams>()),
        ("batchnorm_partials", size_of::<BnParams>()),
        ("batchnorm_stats", size_of::<BnParams>()),
        ("bce_backward", size_of::<BceParams>()),
        ("bce_forward", size_of::<BceParams>()),
        ("conv2d_backward_bias", size_of::<ConvParams>()),
        ("conv2d_backward_input", size_of::<ConvParams>()),
        ("conv2d_backward_weight", size_of::<ConvParams>()),
        ("conv2d_forward", size_of::<ConvForwardParams>()),
        ("conv2d_pack_weights", size_of::<PackParams>()),
        ("dense_backward_bias", size_of::<DenseParams>()),
        ("dense_backward_input", size_of::<DenseParams>()),
        ("dense_backward_weight", size_of::<DenseParams>()),
        ("dense_forward", size_of::<DenseParams>()),
        ("dropout_backward", size_of::<DropoutParams>()),
        ("dropout_forward", size_of::<DropoutParams>()),
        ("fill", size_of::<FillParams>()),
        ("maxpool_backward", size_of::<PoolParams>()),
        ("maxpool_forward", size_of::<PoolParams>()),
        ("nonfinite_count", size_of::<NonfiniteParams>()),
        ("peak_fma", size_of::<PeakParams>()),
        ("reduce_partials", size_of::<ReduceParams>()),
        ("relu_backward", size_of::<ElementwiseParams>()),
        ("relu_forward", size_of::<ElementwiseParams>()),
        ("sigmoid_backward", size_of::<ElementwiseParams>()),
        ("sigmoid_forward", size_of::<ElementwiseParams>()),
    ];
    assert_eq!(host.len(), SHADERS.len(), "every shader needs a row here");
    for (name, src) in SHADERS {
        let module = parse(name, src);
        let (_, var) = module
            .global_variables
            .iter()
            .find(|(_, v)| v.space == naga::AddressSpace::Uniform)
            .unwrap_or_else(|| panic!("{name}: no uniform params"));
        let binding = var.binding.as_ref().unwrap();
        assert_eq!(
            (binding.group, binding.binding),
            (0, 0),
            "{name}: params at @binding(0)"
        );
        let size = module.types[var.ty].inner.size(module.to_ctx()) as usize;
        let expected = host.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(
            size, expected,
            "{name}: WGSL params struct is {size} bytes, host mirror {expected}"
        );
        assert_eq!(
            size % 16,
            0,
            "{name}: uniform structs are padded to 16 bytes"
        );
    }
}

#[test]
fn every_shader_compiles_on_the_adapter() {
    let gpu = Gpu::new().unwrap();
    for (name, _) in SHADERS {
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
