//! The gradient-check suite passes on the real kernels, fails on broken ones,
//! and the documented behaviour at kinks holds.

use postergrad::gradcheck::{self, Options};
use postergrad::ops::{self, bce, relu, sigmoid};
use postergrad::shaders;
use postergrad::{Gpu, Mode, Tape, Tensor};

mod common;
use common::f64_gpu;

fn suite(gpu: &Gpu, ops: &[&str], seed: u64) -> gradcheck::Report {
    gradcheck::run(
        gpu,
        &Options {
            seed,
            ops: Some(ops.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn every_op_passes_with_two_seeds() {
    let gpu = Gpu::new().unwrap();
    for seed in [0, 7] {
        let report = gradcheck::run(
            &gpu,
            &Options {
                seed,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(report.passed(), "seed {seed}:\n{report}");
        for op in postergrad::ops::registry::gradcheck_ops() {
            assert!(
                report.rows.iter().any(|r| r.op == op),
                "{op} missing from the report"
            );
        }
        // every row carries real numbers
        assert!(report
            .rows
            .iter()
            .all(|r| r.max_abs.is_finite() && r.tol.rtol > 0.0));
        assert!(report.rows.len() >= 300, "{} rows", report.rows.len());
        assert!(report.into_result().is_ok());
    }
}

#[test]
fn every_op_passes_in_f64_with_pytorch_gradcheck_tolerances() {
    let Some(gpu) = f64_gpu() else { return };
    let report = gradcheck::run(&gpu, &Options::default()).unwrap();
    assert!(report.passed(), "{report}");
    let fd: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.check.contains("vs f64 central diff (") && !r.check.contains(" ref "))
        .collect();
    // one central-difference row per checked gradient of every case
    assert!(fd.len() >= 70, "{} rows", fd.len());
    for r in &fd {
        assert_eq!(
            (r.tol.atol, r.tol.rtol),
            (1e-5, 1e-3),
            "{} {} {}",
            r.op,
            r.shape,
            r.check
        );
    }
    // f64 kernels against the f64 reference: agreement to ~1e-9 or better
    for r in report
        .rows
        .iter()
        .filter(|r| r.check.contains("vs f64 reference"))
    {
        assert!(
            r.tol.rtol <= 1e-9,
            "{} {} {}: {}",
            r.op,
            r.shape,
            r.check,
            r.tol
        );
    }
    for op in postergrad::ops::registry::gradcheck_ops() {
        assert!(report.rows.iter().any(|r| r.op == op), "{op} missing");
    }
}

/// One break of every backward kernel (and of the kernels the backward
/// passes share): (shader, from, to, op, the gradient that must then fail).
const BROKEN_BACKWARDS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "dense_backward_input",
        "dx[idx] = dx[idx] + lo[j];",
        "dx[idx] = dx[idx] - lo[j];",
        "dense",
        "dx",
    ),
    (
        "dense_backward_weight",
        "dw[idx] = dw[idx] + lo[j];",
        "dw[idx] = dw[idx] - lo[j];",
        "dense",
        "dw",
    ),
    ("dense_backward_bias", "db[c] + acc", "db[c]", "dense", "db"),
    (
        "relu_backward",
        "y[k] > real(0.0)",
        "y[k] >= real(0.0)",
        "relu",
        "dx",
    ),
    (
        "sigmoid_backward",
        "s * (real(1.0) - s)",
        "s * (real(1.0) + s)",
        "sigmoid",
        "dx",
    ),
    ("bce_backward", "(q - t[i])", "(t[i] - q)", "bce", "dp"),
    (
        "conv2d_dilate",
        "j % s == 0u && i % s == 0u",
        "true",
        "conv2d",
        "dx",
    ),
    (
        "conv2d_backward_weight",
        "a0 = a0 + x_lo.x * g;",
        "a0 = a0 - x_lo.x * g;",
        "conv2d",
        "dw",
    ),
    (
        "conv2d_backward_weight_3x3",
        "let c1 = input12(xp, iy + 1, ix);",
        "let c1 = input12(xp, iy + 1, ix + 1);",
        "conv2d",
        "dw",
    ),
    (
        "conv2d_backward_weight_3x3",
        "gs = gs + g0 + g1 + g2 + g3 + g4 + g5 + g6 + g7;",
        "gs = gs - g0 - g1 - g2 - g3 - g4 - g5 - g6 - g7;",
        "conv2d",
        "db",
    ),
    (
        "conv2d_backward_bias",
        "acc = acc + dy[",
        "acc = acc - dy[",
        "conv2d",
        "db",
    ),
    (
        "conv2d_pack_weights",
        "let flipped = (params.kh - 1u - ky) * params.kw + (params.kw - 1u - kx);",
        "let flipped = ky * params.kw + kx;",
        "conv2d",
        "dx",
    ),
    (
        "batchnorm_backward_input",
        "kx = -k * sums[params.c + ch] / m * invstd;",
        "kx = real(0.0);",
        "batchnorm",
        "dx",
    ),
    (
        "batchnorm_backward_input",
        "params.relu_input == 0u || v > real(0.0)",
        "true",
        "batchnorm",
        "dx",
    ),
    (
        "batchnorm_backward_params",
        "dgamma[ch] + sums[params.c + ch]",
        "dgamma[ch] + sums[ch]",
        "batchnorm",
        "dgamma",
    ),
    (
        "batchnorm_backward_partials",
        "s_dy = s_dy + g;",
        "s_dy = s_dy - g;",
        "batchnorm",
        "dbeta",
    ),
    (
        "maxpool_backward",
        "if (window_argmax(plane, oy, ox) == params.x_base + i) {",
        "if (window_argmax(plane, oy, ox) == params.x_base + i + 1u) {",
        "maxpool",
        "dx",
    ),
    (
        "maxpool_backward_windows",
        "arg = k;",
        "arg = k + 1u;",
        "maxpool",
        "dx",
    ),
    (
        "dropout_backward",
        "keep(params.first + r)",
        "keep(params.first + r + 1u)",
        "dropout",
        "dx",
    ),
    (
        "bnpool_backward_input",
        "arg = select(arg, vec4<u32>(2u), w2);",
        "arg = select(arg, vec4<u32>(3u), w2);",
        "bnpool",
        "dz",
    ),
    (
        "bnpool_backward_partials",
        "s_dyx = s_dyx + g * win.xhat;",
        "s_dyx = s_dyx + g;",
        "bnpool",
        "dgamma",
    ),
];

#[test]
fn the_f64_suite_fails_when_any_backward_shader_is_broken() {
    let Some(gpu) = f64_gpu() else { return };
    let mutations = BROKEN_BACKWARDS.iter().copied();
    // the subgroup weight gradient runs only where subgroups exist
    let subgroup = (
        "conv2d_backward_weight_3x3_subgroup",
        "let c2 = input12(xp, iy + 2, ix);",
        "let c2 = input12(xp, iy + 2, ix + 1);",
        "conv2d",
        "dw",
    );
    // a weight-gradient kernel the adapter does not pick cannot fail
    let picked = weight_kernels(&gpu);
    let runs =
        |shader: &str| !shader.starts_with("conv2d_backward_weight") || picked.contains(&shader);
    for (shader, from, to, op, grad) in mutations.chain([subgroup]).filter(|m| runs(m.0)) {
        let src = shaders::standalone(shader).unwrap();
        assert_eq!(
            src.matches(from).count(),
            1,
            "mutation target not found once in {shader}"
        );
        gpu.override_shader(shader, src.replacen(from, to, 1))
            .unwrap();
        let mut failed = vec![];
        for case in gradcheck::cases(op, 0) {
            if case.inputs[0].data.len() > 20_000 {
                continue;
            }
            for row in gradcheck::check_case(&gpu, &case, 0).unwrap() {
                if !row.passed {
                    failed.push(row.check);
                }
            }
        }
        let check = format!("{grad} vs f64 central diff");
        assert!(
            failed.iter().any(|f| f.starts_with(&check)),
            "{shader} with '{to}': '{check}' should fail in f64; failing: {failed:?}"
        );
        gpu.override_shader(shader, src.to_string()).unwrap();
    }
}

#[test]
fn cli_gradcheck_dtype_f64_runs_in_f64_or_says_why_not() {
    let run = |backend: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_postergrad"));
        cmd.args(["gradcheck", "--dtype", "f64", "--op", "sigmoid"]);
        if let Some(b) = backend {
            cmd.env("WGPU_BACKEND", b);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), stdout, stderr)
    };
    let passed = |(ok, stdout, stderr): (bool, String, String)| {
        assert!(ok, "{stdout}\n{stderr}");
        assert!(stdout.contains("0 failed"), "{stdout}");
        (stdout, stderr)
    };
    let f64_available = Gpu::new().unwrap().adapter().shader_f64;
    let (stdout, stderr) = passed(run(None));
    if f64_available {
        assert!(stdout.starts_with("kernels in f64\n"), "{stdout}");
        assert!(
            stdout.contains("dx vs f64 central diff (elementwise)")
                && stdout.contains("atol 1e-5 rtol 1e-3"),
            "{stdout}"
        );
    } else {
        assert!(stderr.contains("no SHADER_F64"), "{stderr}");
    }
    // GL llvmpipe has no SHADER_F64: the note, then the f32 suite. Where GL
    // gives no usable device (NVIDIA's EGL on a headless H100 VM: "Parent
    // device is lost"), the command must say so and exit non-zero.
    let gl = run(Some("gl"));
    if !gl.0 && gl.2.contains("refused to open a device") {
        eprintln!("skipped: no usable GL device here: {}", gl.2.trim());
        return;
    }
    let (stdout, stderr) = passed(gl);
    if stdout.starts_with("kernels in f32\n") {
        assert!(
            stderr.contains("has no SHADER_F64") && stderr.contains("running the f32 suite"),
            "{stderr}"
        );
        assert!(stdout.contains("vs f32 central diff"), "{stdout}");
    }
}

#[test]
fn unknown_op_is_an_error_listing_the_known_ones() {
    let gpu = Gpu::new().unwrap();
    let err = gradcheck::run(
        &gpu,
        &Options {
            ops: Some(vec!["conv9".into()]),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("conv9") && err.contains("dense, relu"),
        "{err}"
    );
}

/// Replaces `from` by `to` in a shader (asserting the mutation applies),
/// runs every case of the op, and returns the failing check names.
fn failing_checks_with_mutation(shader: &str, from: &str, to: &str, op: &str) -> Vec<String> {
    failing_small_cases_with_mutation(shader, from, to, op, usize::MAX)
}

/// Like `failing_checks_with_mutation`, over the op's cases whose first input
/// has at most `max_elems` elements (keeps the conv2d mutation tests quick).
fn failing_small_cases_with_mutation(
    shader: &str,
    from: &str,
    to: &str,
    op: &str,
    max_elems: usize,
) -> Vec<String> {
    // the shader with its library functions written out, so that a
    // mutation of one breaks this kernel alone
    let src = shaders::standalone(shader).unwrap();
    assert_eq!(
        src.matches(from).count(),
        1,
        "mutation target not found once in {shader}"
    );
    let gpu = Gpu::new().unwrap();
    if shader == "conv2d_backward_input" {
        // the direct strided kernel is a variant: run it wherever it fits
        gpu.set_tuning(postergrad::gpu::Tuning {
            prefer: &["conv2d_backward_input"],
            ..Default::default()
        })
        .unwrap();
    }
    gpu.override_shader(shader, src.replacen(from, to, 1))
        .unwrap();
    let mut failed = vec![];
    for case in gradcheck::cases(op, 0) {
        if case.inputs[0].data.len() > max_elems {
            continue;
        }
        for row in gradcheck::check_case(&gpu, &case, 0).unwrap() {
            if !row.passed {
                failed.push(row.check);
            }
        }
    }
    assert!(!failed.is_empty(), "{shader} with '{to}' passed");
    failed
}

/// The f32 suite reports both the reference and the central-difference check failing.
fn assert_caught(failed: &[String], grad: &str) {
    for check in [
        format!("{grad} vs f64 reference"),
        format!("{grad} vs f32 central diff"),
    ] {
        assert!(
            failed.iter().any(|f| f.starts_with(&check)),
            "'{check}' should fail; failing: {failed:?}"
        );
    }
}

#[test]
fn catches_a_flipped_sign_in_dense_backward_input() {
    let f = failing_checks_with_mutation(
        "dense_backward_input",
        "dx[idx] = dx[idx] + lo[j];",
        "dx[idx] = dx[idx] - lo[j];",
        "dense",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_flipped_sign_in_dense_backward_weight() {
    let f = failing_checks_with_mutation(
        "dense_backward_weight",
        "dw[idx] = dw[idx] + lo[j];",
        "dw[idx] = dw[idx] - lo[j];",
        "dense",
    );
    assert_caught(&f, "dw");
}

#[test]
fn catches_a_dropped_bias_gradient() {
    let f = failing_checks_with_mutation("dense_backward_bias", "db[c] + acc", "db[c]", "dense");
    assert_caught(&f, "db");
}

#[test]
fn catches_an_off_by_one_index_in_dense_backward_weight() {
    // tile row 3 takes input feature m0 + 2: a plausible indexing bug
    let f = failing_checks_with_mutation(
        "dense_backward_weight",
        "acc3_lo = acc3_lo + a.lo.w * g.lo",
        "acc3_lo = acc3_lo + a.lo.z * g.lo",
        "dense",
    );
    assert_caught(&f, "dw");
    // the second sample of a step read one element off
    let f = failing_checks_with_mutation(
        "dense_backward_weight",
        "let a2 = x8(params.a_base + (s + 1u) * M + m0, more);",
        "let a2 = x8(params.a_base + (s + 1u) * M + m0 + 1u, more);",
        "dense",
    );
    assert_caught(&f, "dw");
}

#[test]
fn catches_wrong_texel_reads_in_the_dense_forward_and_input_gradient() {
    // the second of four rows of w read one column off
    let f = failing_checks_with_mutation(
        "dense_forward",
        "let w1 = w8(wb + N, live.y);",
        "let w1 = w8(wb + N + 1u, live.y);",
        "dense",
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
    let f = failing_checks_with_mutation(
        "dense_backward_input",
        "let b5 = select(zero, w4(bc5 + s), live);",
        "let b5 = select(zero, w4(bc4 + s), live);",
        "dense",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_wrong_relu_backward() {
    let f = failing_checks_with_mutation(
        "relu_backward",
        "y[k] > real(0.0)",
        "y[k] >= real(0.0)",
        "relu",
    );
    // y ≥ 0 is always true: the gradient leaks through negative inputs
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_wrong_sigmoid_backward() {
    let f = failing_checks_with_mutation(
        "sigmoid_backward",
        "s * (real(1.0) - s)",
        "s * (real(1.0) + s)",
        "sigmoid",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_flipped_sign_in_bce_backward() {
    let f = failing_checks_with_mutation("bce_backward", "(q - t[i])", "(t[i] - q)", "bce");
    assert_caught(&f, "dp");
}

#[test]
fn catches_a_flipped_sign_in_conv2d_backward_input() {
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_input",
        "dx[idx] = dx[idx] + acc[j][i];",
        "dx[idx] = dx[idx] - acc[j][i];",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_dilation_that_keeps_every_position() {
    // conv2d_dilate copies dy everywhere instead of onto the stride's grid:
    // every strided input gradient is wrong
    let f = failing_small_cases_with_mutation(
        "conv2d_dilate",
        "j % s == 0u && i % s == 0u",
        "true",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_missing_stride_test_in_conv2d_backward_input() {
    // forgets that a tap only maps back to an output when ty is a multiple of
    // the stride: only the stride-2 cases can catch it
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_input",
        "ty % S == 0 && tx % S == 0",
        "true",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_flipped_sign_in_conv2d_backward_weight() {
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_weight",
        "a0 = a0 + x_lo.x * g;",
        "a0 = a0 - x_lo.x * g;",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dw");
}

#[test]
fn catches_a_wrong_column_in_the_3x3_weight_gradient_rows() {
    if !weight_kernel_runs("conv2d_backward_weight_3x3") {
        return;
    }
    // the twelve input columns under the eight pixels are fetched one column off
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_weight_3x3",
        "let c1 = input12(xp, iy + 1, ix);",
        "let c1 = input12(xp, iy + 1, ix + 1);",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dw");
    assert!(
        !f.iter().any(|c| c.contains("dx")),
        "only dw uses it: {f:?}"
    );
    // the same in the pair's second input channel
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_weight_3x3",
        "let d1 = input12(xq, iy + 1, ix);",
        "let d1 = input12(xq, iy + 1, ix + 1);",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dw");
}

#[test]
fn catches_a_wrong_texel_row_in_the_conv2d_texture_reads() {
    // texel k of a texture copy (elements 4k .. 4k+3) sits at (k % 4096,
    // k / 4096 % 4096): a wrong row breaks every case whose inputs pass
    // 4,096 texels (f32 only: in f64 the inputs are storage arrays)
    let f = failing_small_cases_with_mutation(
        "conv2d_forward",
        "real(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> TEX_ROW_BITS) & TEX_ROW_MASK)",
        "real(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> (TEX_ROW_BITS - 1u)) & TEX_ROW_MASK)",
        "conv2d",
        20_000,
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
    assert_caught(&f, "dx");
    // the 3×3 weight gradient reads four elements per fetch (tex4_at): only
    // the one-poster 350×350 case passes 4,096 texels
    if weight_kernel_runs("conv2d_backward_weight_3x3") {
        let f = failing_small_cases_with_mutation(
            "conv2d_backward_weight_3x3",
            "vec4<real>(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> TEX_ROW_BITS) & TEX_ROW_MASK)",
            "vec4<real>(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> (TEX_ROW_BITS - 1u)) & TEX_ROW_MASK)",
            "conv2d",
            400_000,
        );
        assert_caught(&f, "dw");
        assert_caught(&f, "db");
    }
    if !subgroups() {
        return;
    }
    // the 3×3 subgroup kernel: only the one-poster 350×350 case is that large
    let f = failing_small_cases_with_mutation(
        "conv2d_forward_3x3",
        "vec4<real>(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> TEX_ROW_BITS) & TEX_ROW_MASK)",
        "vec4<real>(textureLoad(t, vec2<u32>(k & TEX_ROW_MASK, (k >> (TEX_ROW_BITS - 1u)) & TEX_ROW_MASK)",
        "conv2d",
        400_000,
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
}

/// Whether this adapter runs the subgroup kernels (`conv2d_forward_3x3`,
/// `conv2d_backward_weight_3x3_subgroup`: subgroups of 8 or more); says so
/// where it does not.
fn subgroups() -> bool {
    let yes = Gpu::new().unwrap().adapter().subgroups;
    if !yes {
        eprintln!("skipped: no subgroups on this adapter, the subgroup conv kernels do not run");
    }
    yes
}

/// The weight-gradient kernels `BackwardWeight::for_geometry` picks on this
/// adapter for the suite's conv cases (3×3 at stride 1 with 3 and with 16
/// input channels, 5×5).
fn weight_kernels(gpu: &Gpu) -> Vec<&'static str> {
    use postergrad::ops::conv2d::{BackwardWeight, ConvGeometry};
    let config = ops::Conv2dConfig::default();
    [
        ([1, 3, 9, 9], [4, 3, 3, 3]),
        ([1, 16, 9, 9], [4, 16, 3, 3]),
        ([1, 3, 9, 9], [4, 3, 5, 5]),
    ]
    .iter()
    .map(|(x, w)| {
        let g = ConvGeometry::new(x, w, config).unwrap();
        BackwardWeight::for_geometry(gpu, &g).kernel()
    })
    .collect()
}

/// Whether this adapter runs weight-gradient `kernel` (GPUs run
/// `conv2d_backward_weight` for every layer, the CPU adapter the 3×3
/// kernels); says so where it does not, since a mutation of a kernel that
/// never runs cannot fail the suite.
fn weight_kernel_runs(kernel: &str) -> bool {
    let gpu = Gpu::new().unwrap();
    let picked = weight_kernels(&gpu);
    let yes = picked.contains(&kernel);
    if !yes {
        eprintln!(
            "skipped: {kernel} does not run on {} (weight gradients: {picked:?})",
            gpu.adapter()
        );
    }
    yes
}

#[test]
fn catches_wrong_lanes_and_columns_in_the_3x3_subgroup_weight_gradient() {
    if !weight_kernel_runs("conv2d_backward_weight_3x3_subgroup") {
        return;
    }
    // (from, to, bias gradient affected): dy of channel 1 taken from lane
    // 2, the second fetch of each lane reading its first channel again, the
    // input columns one column off
    for (from, to, db) in [
        ("subgroupShuffle(v.x, 1u)", "subgroupShuffle(v.x, 2u)", true),
        (
            "let co_b = min(co0 + 8u + i, params.cout - 1u);",
            "let co_b = min(co0 + i, params.cout - 1u);",
            true,
        ),
        (
            "let c1 = input12(xp, iy + 1, ix);",
            "let c1 = input12(xp, iy + 1, ix + 1);",
            false,
        ),
    ] {
        // only the cases with 8 or more input channels run this kernel
        let f = failing_small_cases_with_mutation(
            "conv2d_backward_weight_3x3_subgroup",
            from,
            to,
            "conv2d",
            40_000,
        );
        assert_caught(&f, "dw");
        assert_eq!(
            f.iter().any(|c| c.starts_with("db")),
            db,
            "{to}: db fails only where dy is wrong: {f:?}"
        );
        assert!(
            !f.iter()
                .any(|c| c.starts_with("forward") || c.starts_with("dx")),
            "{to}: only the weight pass uses it: {f:?}"
        );
    }
}

#[test]
fn catches_wrong_inputs_and_weights_in_the_3x3_subgroup_forward() {
    if !subgroups() {
        return;
    }
    // (from, to): a pixel reading its left neighbour's input, the row's
    // alignment shift off by one, a tap taking its neighbour's weights
    for (from, to) in [
        (
            "a1 = row3(a1, r.lo.y, r.lo.z, r.lo.w, w0, w1, w2);",
            "a1 = row3(a1, r.lo.x, r.lo.z, r.lo.w, w0, w1, w2);",
        ),
        (
            "select(select(select(a, s1, s == 1u), s2, s == 2u), s3, s == 3u)",
            "select(select(select(a, s1, s == 2u), s2, s == 3u), s3, s == 1u)",
        ),
        (
            "let w1 = tap_weights(va, 4u);",
            "let w1 = tap_weights(va, 0u);",
        ),
    ] {
        // the forward and the stride-1 backward-input (same kernel) fail
        let f = failing_small_cases_with_mutation("conv2d_forward_3x3", from, to, "conv2d", 20_000);
        assert!(
            f.iter().any(|c| c.starts_with("forward vs f64")),
            "{to}: {f:?}"
        );
        assert_caught(&f, "dx");
        // (central differences run the broken forward, so only the
        // gradients' own kernels are judged by the reference)
        assert!(
            !f.iter()
                .any(|c| c.starts_with("dw vs f64 reference")
                    || c.starts_with("db vs f64 reference")),
            "{to}: the weight and bias gradients do not run it: {f:?}"
        );
    }
}

#[test]
fn catches_a_wrong_shift_in_the_conv2d_strip() {
    // the stride-1 strip loads the wrong next input when it shifts to the
    // next kx: the forward and the stride-1 backward-input (same kernel) fail
    let f = failing_small_cases_with_mutation(
        "conv2d_forward",
        "ix0 + i32(8u + kx)",
        "ix0 + i32(9u + kx)",
        "conv2d",
        20_000,
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_wrong_pixel_in_the_strided_conv2d_path() {
    // only the stride-2 cases run the reload path
    let f = failing_small_cases_with_mutation(
        "conv2d_forward",
        "r1 = input_at(plane, iy, ix0 + i32(1u * s + kx));",
        "r1 = input_at(plane, iy, ix0 + i32(0u * s + kx));",
        "conv2d",
        20_000,
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
}

#[test]
fn catches_an_unflipped_kernel_in_backward_input() {
    // backward-input at stride 1 is the forward with the kernel transposed
    // and flipped by conv2d_pack_weights: forgetting the flip breaks dx only
    let f = failing_small_cases_with_mutation(
        "conv2d_pack_weights",
        "let flipped = (params.kh - 1u - ky) * params.kw + (params.kw - 1u - kx);",
        "let flipped = ky * params.kw + kx;",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dx");
    assert!(
        !f.iter().any(|c| c.contains("forward")),
        "the forward does not use the flip: {f:?}"
    );
}

#[test]
fn catches_a_dropped_chunk_in_the_split_reduction() {
    // the last chunk of the split weight/bias sums is lost: only cases with
    // more than one chunk of output pixels (4,096 on the CPU adapter) have a
    // second one
    let f = failing_small_cases_with_mutation(
        "reduce_partials",
        "c < params.chunks",
        "c + 1u < params.chunks",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "dw");
    assert_caught(&f, "db");
}

#[test]
fn catches_a_wrong_conv2d_bias_gradient() {
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_bias",
        "acc = acc + dy[",
        "acc = acc - dy[",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "db");
}

#[test]
fn catches_a_wrong_step_in_the_3x3_weight_gradient_walk() {
    if !weight_kernel_runs("conv2d_backward_weight_3x3") {
        return;
    }
    // each step of the pixel walk takes eight pixels of a row: dy of the
    // last four shifted by one inside their texels, or a step let past the
    // end of a row whose width is not a multiple of 8, must fail dw and db
    for (from, to) in [
        (
            "select(zero, shift4(t1, t2, i & 3u), keep_hi)",
            "select(zero, shift4(t1, t2, (i + 1u) & 3u), keep_hi)",
        ),
        (
            "let count = min(min(8u, params.ow - ox), p_end - p);",
            "let count = min(8u, p_end - p);",
        ),
    ] {
        let f = failing_small_cases_with_mutation(
            "conv2d_backward_weight_3x3",
            from,
            to,
            "conv2d",
            20_000,
        );
        assert_caught(&f, "dw");
        assert_caught(&f, "db");
        assert!(
            !f.iter()
                .any(|c| c.starts_with("forward") || c.starts_with("dx")),
            "{to}: only the weight pass uses it: {f:?}"
        );
    }
}

#[test]
fn catches_a_wrong_bias_gradient_in_the_3x3_weight_pass() {
    if !weight_kernel_runs("conv2d_backward_weight_3x3") {
        return;
    }
    // 3×3 stride-1 layers get db from conv2d_backward_weight_3x3's own sum of dy
    let f = failing_small_cases_with_mutation(
        "conv2d_backward_weight_3x3",
        "gs = gs + g0 + g1 + g2 + g3 + g4 + g5 + g6 + g7;",
        "gs = gs - g0 - g1 - g2 - g3 - g4 - g5 - g6 - g7;",
        "conv2d",
        20_000,
    );
    assert_caught(&f, "db");
    assert!(
        f.iter()
            .all(|c| !c.starts_with("dw") && !c.starts_with("dx")),
        "only the bias sum changed: {f:?}"
    );
}

#[test]
fn catches_a_batchnorm_backward_that_ignores_the_variance_path() {
    let f = failing_small_cases_with_mutation(
        "batchnorm_backward_input",
        "kx = -k * sums[params.c + ch] / m * invstd;",
        "kx = real(0.0);",
        "batchnorm",
        20_000,
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_fused_relu_that_lets_negative_inputs_through() {
    // BnInput::Relu: the backward mask dropped sends gradient to z ≤ 0
    let f = failing_small_cases_with_mutation(
        "batchnorm_backward_input",
        "params.relu_input == 0u || v > real(0.0)",
        "true",
        "batchnorm",
        20_000,
    );
    assert_caught(&f, "dx");
    assert!(
        f.iter().all(|c| !c.starts_with("forward")),
        "only the backward changed: {f:?}"
    );
    // and the relu dropped from the forward statistics shows in the forward
    let f = failing_small_cases_with_mutation(
        "batchnorm_partials",
        "return max(v, vec4<real>(0.0));",
        "return v;",
        "batchnorm",
        20_000,
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
}

#[test]
fn catches_a_wrong_batchnorm_gamma_gradient() {
    let f = failing_small_cases_with_mutation(
        "batchnorm_backward_params",
        "dgamma[ch] + sums[params.c + ch]",
        "dgamma[ch] + sums[ch]",
        "batchnorm",
        20_000,
    );
    assert_caught(&f, "dgamma");
}

#[test]
fn catches_a_wrong_merge_of_batchnorm_chunks() {
    // Chan's merge without the between-chunk term: only the case with 3
    // chunks per channel sees it, as a wrong variance
    let f = failing_small_cases_with_mutation(
        "batchnorm_stats",
        "m2 = m2 + partial[o + 2u] + delta * delta * n * nb / total;",
        "m2 = m2 + partial[o + 2u];",
        "batchnorm",
        20_000,
    );
    assert!(f.iter().any(|c| c == "forward vs f64 reference"), "{f:?}");
    // the same term left out where each chunk merges its groups of four
    let f = failing_small_cases_with_mutation(
        "batchnorm_partials",
        "m2 = m2 + dot(d, d) + delta * delta * count * nb / n;",
        "m2 = m2 + dot(d, d);",
        "batchnorm",
        20_000,
    );
    assert!(f.iter().any(|c| c == "forward vs f64 reference"), "{f:?}");
    // a chunk's walk that does not move on to the next sample at a plane's
    // end: it reads the same sample's plane again
    let f = failing_small_cases_with_mutation(
        "batchnorm_partials",
        "sample = sample + 1u;",
        "sample = sample + 0u;",
        "batchnorm",
        20_000,
    );
    assert!(f.iter().any(|c| c == "forward vs f64 reference"), "{f:?}");
}

#[test]
fn catches_a_wrong_maxpool_backward() {
    // a window's gradient goes to the element before its maximum
    let f = failing_checks_with_mutation(
        "maxpool_backward",
        "if (window_argmax(plane, oy, ox) == params.x_base + i) {",
        "if (window_argmax(plane, oy, ox) == params.x_base + i + 1u) {",
        "maxpool",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_wrong_maxpool_backward_windows() {
    // the per-window kernel (non-overlapping windows) sends the gradient
    // one element past the maximum
    let f = failing_checks_with_mutation(
        "maxpool_backward_windows",
        "arg = k;",
        "arg = k + 1u;",
        "maxpool",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_dropout_backward_with_another_mask() {
    let f = failing_checks_with_mutation(
        "dropout_backward",
        "keep(params.first + r)",
        "keep(params.first + r + 1u)",
        "dropout",
    );
    assert_caught(&f, "dx");
}

#[test]
fn catches_a_bnpool_forward_that_pools_or_masks_wrongly() {
    // one column of every window left out of the max
    let f = failing_checks_with_mutation(
        "bnpool_forward",
        "max(m_lo.x, m_lo.y), ",
        "m_lo.x, ",
        "bnpool",
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
    // another element's dropout mask
    let f = failing_checks_with_mutation(
        "bnpool_forward",
        "keep(params.first + o + j)",
        "keep(params.first + o + j + 1u)",
        "bnpool",
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
    // γ read from the next channel's slot of the channel window
    let f = failing_checks_with_mutation(
        "bnpool_forward",
        "let scale = chan_at(2u * c + ch) * chan_at(c + ch);",
        "let scale = chan_at(2u * c + ch + 1u) * chan_at(c + ch);",
        "bnpool",
    );
    assert!(f.iter().any(|c| c.starts_with("forward vs f64")), "{f:?}");
}

#[test]
fn catches_a_bnpool_backward_that_routes_the_gradient_wrongly() {
    // the bottom-left winner's gradient lands on the bottom-right element
    let f = failing_checks_with_mutation(
        "bnpool_backward_input",
        "arg = select(arg, vec4<u32>(2u), w2);",
        "arg = select(arg, vec4<u32>(3u), w2);",
        "bnpool",
    );
    assert_caught(&f, "dz");
    // a window past the pooled row's end (W = 10, 13: a partial last quad)
    // takes the gradient of the next row's first window
    let f = failing_checks_with_mutation(
        "bnpool_backward_input",
        "cols < vec4<u32>(params.ow)",
        "cols < vec4<u32>(params.ow + 1u)",
        "bnpool",
    );
    assert_caught(&f, "dz");
    // the relu's mask dropped: gradient reaches z ≤ 0
    let f = failing_checks_with_mutation(
        "bnpool_backward_input",
        "let relu = params.relu_input == 1u;",
        "let relu = false;",
        "bnpool",
    );
    assert_caught(&f, "dz");
}

#[test]
fn catches_bnpool_sums_without_the_variance_path_or_the_mask() {
    let f = failing_checks_with_mutation(
        "bnpool_backward_input",
        "f.kx = -f.k * chan_at(5u * params.c + ch) / m * nrm.invstd;",
        "f.kx = real(0.0);",
        "bnpool",
    );
    assert_caught(&f, "dz");
    let f = failing_checks_with_mutation(
        "bnpool_backward_partials",
        "s_dyx = s_dyx + g * win.xhat;",
        "s_dyx = s_dyx + g;",
        "bnpool",
    );
    assert_caught(&f, "dgamma");
    // the dropout mask left out of the sums: dβ = Σ g sees dropped windows
    let f = failing_checks_with_mutation(
        "bnpool_backward_partials",
        "g = select(vec4<real>(0.0), g * real(params.scale), kept);",
        "g = g * real(params.scale);",
        "bnpool",
    );
    assert_caught(&f, "dbeta");
}

#[test]
fn catches_a_wrong_adam_update() {
    let src = shaders::source("adam_step").unwrap();
    let gpu = Gpu::new().unwrap();
    gpu.override_shader("adam_step", src.replacen("(sqrt(vi) + ", "(vi + ", 1))
        .unwrap();
    let report = suite(&gpu, &["adam"], 0);
    assert!(!report.passed());
    let err = report.into_result().unwrap_err().to_string();
    assert!(
        err.starts_with("gradient check failed:")
            && err.contains("adam p after 3 steps + 1 NaN-guarded"),
        "{err}"
    );
}

#[test]
fn catches_an_adam_update_that_ignores_the_nonfinite_guard() {
    let src = shaders::source("adam_step").unwrap();
    let gpu = Gpu::new().unwrap();
    let broken = src.replacen("guard[0] != 0u", "guard[0] == 0xffffffffu", 1);
    assert_ne!(broken, src);
    gpu.override_shader("adam_step", broken).unwrap();
    let report = suite(&gpu, &["adam"], 0);
    let err = report.into_result().unwrap_err().to_string();
    assert!(err.contains("NaN-guarded"), "{err}");
}

#[test]
fn cli_gradcheck_exits_non_zero_with_a_broken_shader_dir() {
    let dir = std::env::temp_dir().join(format!("postergrad-broken-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = shaders::source("sigmoid_backward").unwrap();
    std::fs::write(
        dir.join("sigmoid_backward.wgsl"),
        src.replacen("dy[k] * s", "-dy[k] * s", 1),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(["gradcheck", "--op", "sigmoid", "--shader-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "exit status {:?}\n{stdout}",
        out.status
    );
    assert!(
        stdout.contains("FAIL") && stdout.contains("dx vs f64 reference"),
        "{stdout}"
    );
    // The failure report lists the first mismatching elements: the negated
    // kernel gives exactly minus the reference, element by element.
    let section = stdout
        .split("sigmoid [3, 37] dx vs f64 reference — first elements out of tolerance:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no element report in:\n{stdout}"));
    let rows: Vec<Vec<f64>> = section
        .lines()
        .skip(1)
        .take(postergrad::gradcheck::SHOWN_ELEMENTS)
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        rows.len(),
        postergrad::gradcheck::SHOWN_ELEMENTS,
        "{section}"
    );
    for r in &rows {
        let (tested, trusted, diff) = (r[1], r[2], r[3]);
        // f32 s·(1 − s) loses digits where s is near 1 (1.6e-5 of the value
        // measured on an H100's Vulkan driver): 1e-4, still far from a match
        assert!(
            (tested + trusted).abs() <= 1e-4 * trusted.abs().max(1e-3),
            "{r:?}"
        );
        assert!(
            (diff - (tested - trusted)).abs() <= 1e-3 * diff.abs(),
            "{r:?}"
        );
    }

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(["gradcheck", "--op", "sigmoid,relu", "--verbose"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}");
    assert!(
        stdout.contains("0 failed") && !stdout.contains("dense"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "relu [64, 1000] dx vs f64 reference — first elements (all within tolerance)"
        ),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------- the kinks

fn run_unary(
    gpu: &Gpu,
    x: &[f32],
    f: fn(&Tape, &postergrad::Var) -> postergrad::Result<postergrad::Var>,
) -> (Vec<f32>, Vec<f32>) {
    let tape = Tape::new(gpu, Mode::Training);
    let xv = tape.leaf(Tensor::from_slice(gpu, [x.len()], x).unwrap());
    let y = f(&tape, &xv).unwrap();
    let seed = Tensor::from_slice(gpu, [x.len()], &vec![1.0; x.len()]).unwrap();
    let g = tape.backward_with(&y, seed).unwrap();
    (
        y.value.to_vec(gpu).unwrap(),
        g.get(&xv).unwrap().to_vec(gpu).unwrap(),
    )
}

#[test]
fn relu_at_zero_has_gradient_zero() {
    let gpu = Gpu::new().unwrap();
    let (y, dx) = run_unary(&gpu, &[-1.0, -0.0, 0.0, 1e-30, 2.0], ops::relu);
    assert_eq!(y, vec![0.0, 0.0, 0.0, 1e-30, 2.0]);
    assert_eq!(dx, vec![0.0, 0.0, 0.0, 1.0, 1.0]);
    assert_eq!(relu::cpu::relu_backward(&[0.0], &[1.0]), vec![0.0]);
}

#[test]
fn sigmoid_saturates_without_nan_at_plus_minus_100() {
    let gpu = Gpu::new().unwrap();
    let (y, dx) = run_unary(&gpu, &[-100.0, -20.0, 0.0, 20.0, 100.0], ops::sigmoid);
    assert_eq!(y[0], 0.0);
    assert_eq!(y[4], 1.0);
    assert_eq!(y[2], 0.5);
    assert!((y[1] as f64 - sigmoid::cpu::sigmoid_forward(&[-20.0])[0]).abs() < 1e-12);
    assert!(dx.iter().all(|g| g.is_finite()));
    assert_eq!(dx[2], 0.25);
}

fn bce_at(gpu: &Gpu, p: &[f32], t: &[f32]) -> (f32, Vec<f32>) {
    let tape = Tape::new(gpu, Mode::Training);
    let pv = tape.leaf(Tensor::from_slice(gpu, [1, p.len()], p).unwrap());
    let tv = tape.constant(Tensor::from_slice(gpu, [1, t.len()], t).unwrap());
    let loss = ops::binary_cross_entropy(&tape, &pv, &tv).unwrap();
    let g = tape.backward(&loss).unwrap();
    (
        loss.value.to_vec(gpu).unwrap()[0],
        g.get(&pv).unwrap().to_vec(gpu).unwrap(),
    )
}

#[test]
fn bce_clips_at_exactly_zero_and_one() {
    let gpu = Gpu::new().unwrap();
    // confident and right: loss ≈ −log(1 − 1e-7), gradient blocked by the clip
    let (loss, dp) = bce_at(&gpu, &[0.0, 1.0], &[0.0, 1.0]);
    assert!(loss.is_finite() && loss < 1e-6, "{loss}");
    assert_eq!(dp, vec![0.0, 0.0]);
    // confident and wrong: finite, not inf. In f32 (as in Keras with float32)
    // the clip bounds are 1e-7 and 1 − 1e-7 rounded to f32 = 1 − 2⁻²³:
    // loss = (−ln 1e-7 − ln 2⁻²³) / 2 = (16.118 + 15.942) / 2.
    let (loss, dp) = bce_at(&gpu, &[0.0, 1.0], &[1.0, 0.0]);
    let want = (-(1e-7f32 as f64).ln() - (1.0 - (1.0f32 - 1e-7f32) as f64).ln()) / 2.0;
    assert!(
        (loss as f64 - want).abs() < 1e-4 && (want - 16.030).abs() < 1e-3,
        "{loss} vs {want}"
    );
    assert!((bce::cpu::bce_forward(&[0.0], &[1.0]) - 16.118).abs() < 1e-3);
    assert_eq!(dp, vec![0.0, 0.0]);
    // just inside the clip the gradient flows and is finite
    let (_, dp) = bce_at(&gpu, &[0.5, 1e-3], &[1.0, 1.0]);
    assert!((dp[0] - (-1.0)).abs() < 1e-6, "{dp:?}"); // (0.5 − 1)/(0.25)/2
    assert!(dp[1].is_finite() && dp[1] < -400.0, "{dp:?}");
}

#[test]
fn bce_on_sigmoid_of_extreme_logits_stays_finite() {
    let gpu = Gpu::new().unwrap();
    let tape = Tape::new(&gpu, Mode::Training);
    let z = tape.leaf(Tensor::from_slice(&gpu, [1, 4], &[-100.0, 100.0, -100.0, 100.0]).unwrap());
    let t = tape.constant(Tensor::from_slice(&gpu, [1, 4], &[0.0, 1.0, 1.0, 0.0]).unwrap());
    let p = ops::sigmoid(&tape, &z).unwrap();
    let loss = ops::binary_cross_entropy(&tape, &p, &t).unwrap();
    let g = tape.backward(&loss).unwrap();
    let l = loss.value.to_vec(&gpu).unwrap()[0];
    assert!(l.is_finite() && (l - 8.015).abs() < 1e-3, "{l}"); // half the labels at the clip: 16.03 / 2
    assert!(g
        .get(&z)
        .unwrap()
        .to_vec(&gpu)
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}

#[test]
fn the_folded_grid_pass_catches_a_wrong_folded_index() {
    // past 65,535 workgroups a 1-D grid folds into y; the small-limits pass
    // folds past 3, so this index is checked on small tensors: a wrong
    // second term fails only that pass's rows
    let gpu = Gpu::new().unwrap();
    let src = shaders::standalone("relu_forward").unwrap();
    let from = "gid.y * nwg.x * 256u";
    assert_eq!(src.matches(from).count(), 1, "relu_forward changed");
    gpu.override_shader(
        "relu_forward",
        src.replacen(from, "gid.y * nwg.y * 256u", 1),
    )
    .unwrap();
    let report = suite(&gpu, &["relu"], 0);
    let failed = report.failures();
    assert!(!failed.is_empty(), "{report}");
    assert!(
        failed
            .iter()
            .all(|r| r.shape.ends_with(gradcheck::SMALL_LIMITS)),
        "{report}"
    );
    // and the pass leaves the device's tuning as it found it
    assert_eq!(gpu.tuning(), postergrad::gpu::Tuning::default());
}

/// The checks of `op` that fail with `shader`'s `from` replaced by `to`
/// (once, in its one-piece source), and the passes they belong to.
fn failures_by_pass(shader: &str, from: &str, to: &str, op: &str) -> (usize, Vec<String>) {
    let gpu = Gpu::new().unwrap();
    let src = shaders::standalone(shader).unwrap();
    assert_eq!(
        src.matches(from).count(),
        1,
        "{shader} changed: update this mutation"
    );
    gpu.override_shader(shader, src.replacen(from, to, 1))
        .unwrap();
    let report = gradcheck::run(
        &gpu,
        &Options {
            ops: Some(vec![op.to_string()]),
            fast: true,
            ..Default::default()
        },
    )
    .unwrap();
    let failed = report.failures();
    let mut passes: Vec<String> = failed
        .iter()
        .map(|r| {
            [gradcheck::SMALL_LIMITS, gradcheck::SPLIT_BATCH]
                .into_iter()
                .find(|p| r.shape.ends_with(p))
                .unwrap_or("plain")
                .trim()
                .to_string()
        })
        .collect();
    passes.sort();
    passes.dedup();
    (failed.len(), passes)
}

#[test]
fn the_small_limits_pass_catches_a_texel_address_without_its_layer() {
    // a texture copy's layer is element / 4 / 2^24 (its 2^24 texels are 256
    // MiB): no case is that large, but in 256-texel layers every case past
    // 1,024 elements is (f32 only: in f64 the inputs are storage arrays)
    let (n, passes) = failures_by_pass(
        "batchnorm_backward_input",
        "k >> (2u * TEX_ROW_BITS), 0)[i & 3u]);",
        "k >> (2u / TEX_ROW_BITS), 0)[i & 3u]);",
        "batchnorm",
    );
    assert!(n > 0);
    // (on GL, whose copies have two layers, the plain cases' clamped layer
    // is the wrong one too)
    assert!(passes.iter().any(|p| p == "(small limits)"), "{passes:?}");
}

#[test]
fn the_split_batch_pass_catches_swapped_window_bases() {
    // x_base and y_base are 0 unless a batch is split across bindings
    let (n, passes) = failures_by_pass(
        "avgpool_forward",
        "let origin = params.x_base + i * params.hw;",
        "let origin = params.y_base + i * params.hw;",
        "avgpool",
    );
    assert!(n > 0);
    assert_eq!(passes, ["(split batch)"]);
}

#[test]
fn the_split_batch_pass_checks_the_adding_path_of_a_writing_op() {
    // conv2d's input gradient is written fresh (GradWrite::Write) in every
    // plain case; a store loop that runs one column group too far spills
    // into the next group's channels, which that group's first chunk then
    // overwrites — unless the gradient is added (a tensor feeding two ops)
    let (n, passes) = failures_by_pass(
        "conv2d_forward",
        "for (var q = 0u; q < 4u; q = q + 1u) {",
        "for (var q = 0u; q <= 4u; q = q + 1u) {",
        "conv2d",
    );
    assert!(n > 0);
    assert_eq!(passes, ["(split batch)"]);
}

#[test]
fn the_whole_model_check_fails_when_any_backward_kernel_it_runs_is_broken() {
    // gradcheck --model poster --size 48 --batch 4, in f64: it passes, and
    // each break above of a kernel the model's step runs fails it, naming
    // parameter tensors
    let Some(gpu) = f64_gpu() else { return };
    let check = postergrad::nn::check::ModelCheck {
        kind: postergrad::nn::ModelKind::Poster,
        size: 48,
        batch: 4,
        labels: 5,
        seed: 0,
        directions: 2,
    };
    let report = postergrad::nn::check::check_model(&gpu, &check).unwrap();
    assert!(report.passed(), "{report}");
    let ran = gpu.kernels_compiled();
    let mut broken = Vec::new();
    for &(shader, from, to, _, _) in BROKEN_BACKWARDS.iter().filter(|m| ran.contains(&m.0)) {
        let src = shaders::standalone(shader).unwrap();
        gpu.override_shader(shader, src.replacen(from, to, 1))
            .unwrap();
        let report = postergrad::nn::check::check_model(&gpu, &check).unwrap();
        let failed: Vec<&str> = report.failures().iter().map(|r| r.check.as_str()).collect();
        assert!(
            !failed.is_empty() && failed.iter().all(|c| c.starts_with('d') && c.contains(" along ")),
            "{shader} with '{to}': the model check should fail, naming tensors; failing: {failed:?}"
        );
        gpu.override_shader(shader, src.to_string()).unwrap();
        broken.push(shader);
    }
    // the poster model's step runs the dense, conv and bnpool backward
    // kernels, and BCE's
    for k in [
        "dense_backward_input",
        "dense_backward_weight",
        "dense_backward_bias",
        "bce_backward",
        "conv2d_pack_weights",
        "bnpool_backward_input",
        "bnpool_backward_partials",
    ] {
        assert!(
            broken.contains(&k),
            "{k} not run by the model check: {broken:?}"
        );
    }
}
