//! The command line: clear errors for bad input and a missing adapter.

use std::process::Command;

fn postergrad(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_postergrad"));
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn no_adapter_says_what_to_install() {
    let (ok, _, err) = postergrad(&["info"], &[("WGPU_ADAPTER_NAME", "no-such-adapter-xyz")]);
    assert!(!ok);
    assert!(err.contains("no GPU adapter found"), "{err}");
    assert!(
        err.contains("apt-get install -y mesa-vulkan-drivers"),
        "{err}"
    );
    assert!(
        err.contains("WGPU_ADAPTER_NAME=no-such-adapter-xyz"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn info_names_the_adapter_and_its_limits() {
    let (ok, out, err) = postergrad(&["info"], &[]);
    assert!(ok, "{err}");
    for field in [
        "adapter:",
        "backend:",
        "max binding:",
        "max workgroups:",
        "shader f64:",
    ] {
        assert!(out.contains(field), "{out}");
    }
}

#[test]
fn bad_training_settings_are_clear_errors() {
    for (args, needle) in [
        (
            vec!["train", "--batch", "0"],
            "invalid value '0' for '--batch <BATCH>': must be at least 1",
        ),
        (
            vec!["train", "--lr", "-1"],
            "invalid value '-1' for '--lr <LR>': must be a positive number",
        ),
        (
            vec!["train", "--lr", "NaN"],
            "invalid value 'NaN' for '--lr <LR>': must be a positive number",
        ),
        (
            vec!["train", "--epochs", "two"],
            "invalid value 'two' for '--epochs",
        ),
    ] {
        let (ok, _, err) = postergrad(&args, &[]);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn profile_times_every_kernel_of_a_step() {
    let (ok, out, err) = postergrad(
        &[
            "profile", "--model", "poster", "--size", "46", "--batch", "2", "--steps", "1",
            "--json",
        ],
        &[],
    );
    assert!(ok, "profile failed: {err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    let kernels = r["kernels"].as_array().expect("a kernels array");
    let names: Vec<&str> = kernels
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    // the variants the host picks for the model's 3×3 stride-1 convolutions
    // (the forward's and the weight gradient's by the adapter's subgroups;
    // the first layer's 3 input channels keep conv2d_backward_weight_3x3);
    // the conv blocks' batch norm, pool and dropout run fused (bnpool), the
    // dense blocks' unfused
    let gpu = postergrad::Gpu::new().unwrap();
    let (subgroups, cpu) = (gpu.adapter().subgroups, gpu.adapter().is_cpu);
    let (forward, other) = if subgroups {
        ("conv2d_forward_3x3", "conv2d_forward")
    } else {
        ("conv2d_forward", "conv2d_forward_3x3")
    };
    // the CPU adapter: the 3×3 weight kernels (subgroups past the first
    // layer's 3 input channels); GPUs: conv2d_backward_weight everywhere,
    // with the bias summed by its own kernel
    let (weight, first_weight, not_weight, bias) = match (cpu, subgroups) {
        (true, true) => (
            "conv2d_backward_weight_3x3_subgroup",
            "conv2d_backward_weight_3x3",
            "conv2d_backward_weight",
            None,
        ),
        (true, false) => (
            "conv2d_backward_weight_3x3",
            "conv2d_backward_weight_3x3",
            "conv2d_backward_weight",
            None,
        ),
        (false, _) => (
            "conv2d_backward_weight",
            "conv2d_backward_weight",
            "conv2d_backward_weight_3x3",
            Some("conv2d_backward_bias"),
        ),
    };
    assert!(r["conv_kernels"].as_str().unwrap().contains(forward));
    assert!(r["conv_kernels"].as_str().unwrap().contains(weight));
    for k in [
        forward,
        weight,
        first_weight,
        "bnpool_forward",
        "bnpool_backward_partials",
        "bnpool_backward_input",
        "batchnorm_forward",
        "dropout_forward",
        "dense_forward",
        "adam_step",
    ] {
        assert!(names.contains(&k), "{k} missing from {names:?}");
    }
    if let Some(bias) = bias {
        assert!(names.contains(&bias), "{bias} missing from {names:?}");
    }
    for k in [
        other,
        not_weight,
        "maxpool_forward",
        "maxpool_backward",
        "maxpool_backward_windows",
    ] {
        assert!(!names.contains(&k), "{k} should not run for this model");
    }
    // compute-bound kernels carry GFLOP/s, and their FLOP add up to the
    // step's; every kernel carries the bandwidth of what it binds
    let flop: f64 = kernels.iter().map(|k| k["flop"].as_f64().unwrap()).sum();
    let step = r["gflop_per_sample"].as_f64().unwrap() * 1e9 * 2.0;
    assert!((flop - step).abs() < 1e-6 * step, "{flop} vs {step}");
    for k in kernels {
        let name = k["name"].as_str().unwrap();
        let is_product = name.starts_with("conv2d_forward")
            || name.starts_with("conv2d_backward_weight")
            || name.starts_with("dense_forward")
            || name.starts_with("dense_backward_input")
            || name.starts_with("dense_backward_weight");
        assert_eq!(k["gflops"].is_f64(), is_product, "{name}: {k}");
        assert!(k["bytes"].as_f64().unwrap() > 0.0, "{name}");
        assert!(k["gb_per_s"].as_f64().unwrap() > 0.0, "{name}");
    }
    // Weights are packed once per conv forward (4) and per backward-input
    // (3: the first layer's input is the image, which needs no gradient).
    // Each row says the pass where one kernel serves two.
    let calls = |name: &str| {
        kernels
            .iter()
            .find(|k| k["name"] == name)
            .unwrap_or_else(|| panic!("no row {name}"))["calls"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(calls("conv2d_pack_weights"), 4.0);
    assert_eq!(calls("conv2d_pack_weights (backward-input)"), 3.0);
    let forward = names
        .iter()
        .find(|n| n.starts_with("conv2d_forward") && !n.contains('('))
        .unwrap();
    let dx = format!("{forward} (backward-input)");
    assert!(names.contains(&dx.as_str()), "{names:?}");
    let shares: f64 = kernels.iter().map(|k| k["share"].as_f64().unwrap()).sum();
    assert!((shares - 1.0).abs() < 1e-9, "shares sum to {shares}");
    let ms: f64 = kernels.iter().map(|k| k["ms"].as_f64().unwrap()).sum();
    assert!(ms > 0.0 && ms <= r["step_ms"].as_f64().unwrap() * 1.05);
    assert!(r["ms_per_sample"].as_f64().unwrap() > 0.0);
    assert!(r["gflops"].as_f64().unwrap() > 0.0);
    assert!(r["peak_gflops"].as_f64().unwrap() > r["gflops"].as_f64().unwrap());
    assert!(r["adapter"].as_str().unwrap().len() > 3);
}

#[test]
fn profile_step_flop_matches_the_hand_count() {
    // poster at 350: conv1 3→16 at 348², conv2 16→32 at 172², conv3 32→64 at
    // 84², conv4 64→128 at 40², dense 51200→128, 128→128, 128→25.
    let fwd = |c: f64, o: f64, h: f64| 2.0 * c * o * h * h * 9.0;
    let conv = [
        fwd(3.0, 16.0, 348.0),
        fwd(16.0, 32.0, 172.0),
        fwd(32.0, 64.0, 84.0),
        fwd(64.0, 128.0, 40.0),
    ];
    let dense = 2.0 * (51200.0 * 128.0 + 128.0 * 128.0 + 128.0 * 25.0);
    let want = 2.0 * conv[0] + 3.0 * (conv[1] + conv[2] + conv[3]) + 3.0 * dense;
    let got = postergrad::profile::step_flop_per_sample(postergrad::nn::ModelKind::Poster, 350, 25)
        .unwrap();
    assert!((got - want).abs() < 1.0, "{got} vs {want}");
    // The performance issue's figure: about 2.55 GFLOP per sample.
    assert!((got / 1e9 - 2.555).abs() < 0.005, "{} GFLOP", got / 1e9);
}

#[test]
fn weight_chunk_override_is_checked_and_short_chunks_pass_the_conv_gradcheck() {
    // chunks far shorter than any adapter's (64 pixels: many partial sums
    // per case, several per row) give the same gradients
    let (ok, out, err) = postergrad(
        &["gradcheck", "--op", "conv2d"],
        &[("POSTERGRAD_WEIGHT_CHUNK", "64")],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(" 0 failed"), "{out}");
    let (ok, out, _) = postergrad(&["info"], &[("POSTERGRAD_WEIGHT_CHUNK", "512")]);
    assert!(
        ok && out.contains("chunks of 512 output pixels (tuning override)"),
        "{out}"
    );
    let (ok, out, _) = postergrad(&["info", "--weight-chunk", "256"], &[]);
    assert!(
        ok && out.contains("chunks of 256 output pixels (tuning override)"),
        "{out}"
    );
    for bad in ["abc", "8", "100000"] {
        let (ok, _, err) = postergrad(&["info"], &[("POSTERGRAD_WEIGHT_CHUNK", bad)]);
        assert!(!ok);
        assert!(
            err.contains("POSTERGRAD_WEIGHT_CHUNK")
                && err.contains(&format!("'{bad}'"))
                && err.contains("64 ..= 65536"),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// A fresh directory holding `kernel` written out in one piece with `from`
/// (which must occur once) replaced by `to`: a broken kernel for
/// `--shader-dir`.
fn broken_shader_dir(name: &str, kernel: &str, from: &str, to: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("postergrad-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = postergrad::shaders::standalone(kernel).unwrap();
    assert_eq!(
        src.matches(from).count(),
        1,
        "{kernel} changed: update this mutation"
    );
    std::fs::write(
        dir.join(format!("{kernel}.wgsl")),
        src.replacen(from, to, 1),
    )
    .unwrap();
    dir
}

#[test]
fn gradcheck_says_exactly_what_failed_and_feeds_ci() {
    // relu's backward with the wrong threshold: dx is dropped for 0 < y ≤ 0.5
    let dir = broken_shader_dir(
        "broken",
        "relu_backward",
        "y[k] > real(0.0)",
        "y[k] > real(0.5)",
    );
    let d = dir.display().to_string();
    let junit = dir.join("report.xml");
    let j = junit.display().to_string();
    let (ok, out, _) = postergrad(
        &[
            "gradcheck",
            "--op",
            "relu",
            "--shader-dir",
            &d,
            "--json",
            "--junit",
            &j,
        ],
        &[],
    );
    assert!(!ok, "a broken kernel must fail the suite");
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    // 16 rows (4 shapes), and the same 16 again in each of the
    // small-limits and split-batch passes
    assert_eq!(rows.len(), 48, "{out}");
    let failed: Vec<&serde_json::Value> = rows.iter().filter(|r| r["passed"] == false).collect();
    assert_eq!(failed.len(), 18, "{out}");
    let reference = failed
        .iter()
        .find(|r| r["shape"] == "[3, 37]" && r["kind"] == "reference")
        .expect("the [3, 37] reference row fails");
    assert_eq!(reference["check"], "dx vs f64 reference");
    // the worst element as a coordinate, with both values
    let worst = &reference["worst"];
    let pos = worst["position"].as_str().unwrap();
    assert!(
        pos.starts_with('[') && pos.matches(',').count() == 1,
        "{pos}"
    );
    assert_eq!(worst["tested"].as_f64().unwrap(), 0.0);
    assert!(worst["trusted"].as_f64().unwrap() > 0.0);
    assert_eq!(
        reference["repro"],
        "postergrad gradcheck --op relu --case '[3, 37]' --seed 0"
    );
    // JUnit: one test case per row, the failures with their message
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"48\" failures=\"18\""), "{xml}");
    assert_eq!(xml.matches("<testcase ").count(), 48);
    assert_eq!(xml.matches("<failure message=\"worst at ").count(), 18);
    // the table's details say the same, and the re-run line runs one case
    let (ok, out, _) = postergrad(&["gradcheck", "--op", "relu", "--shader-dir", &d], &[]);
    assert!(!ok);
    assert!(
        out.contains("worst at [") && out.contains("the relative term dominates); reference check"),
        "{out}"
    );
    assert!(out.contains(
        "re-run this case alone: postergrad gradcheck --op relu --case '[3, 37]' --seed 0"
    ));
    let (ok, out, _) = postergrad(
        &[
            "gradcheck",
            "--op",
            "relu",
            "--case",
            "[3, 37]",
            "--shader-dir",
            &d,
        ],
        &[],
    );
    assert!(!ok);
    assert!(out.contains("4 checks: 2 passed, 2 failed"), "{out}");
    // fast mode: one direction per gradient, still catches it
    let (ok, out, err) = postergrad(
        &["gradcheck", "--op", "relu", "--fast", "--shader-dir", &d],
        &[],
    );
    assert!(!ok && out.contains("FAIL"), "{out}");
    assert!(err.contains("(fast mode)"), "{err}");
    let (ok, _, err) = postergrad(&["gradcheck", "--case", "[9, 9]"], &[]);
    assert!(
        !ok && err.contains("--case [9, 9]: no case of that shape"),
        "{err}"
    );
}

#[test]
fn gradcheck_mutants_report_killed_survived_and_fail_on_an_unreviewed_survivor() {
    // relu's two kernels: every mutant of this seed is caught or reviewed
    let (ok, out, err) = postergrad(
        &["gradcheck", "--mutants", "3", "--seed", "1", "--op", "relu"],
        &[],
    );
    assert!(ok, "{out}{err}");
    for k in ["relu_forward", "relu_backward"] {
        let row = out
            .lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{out}"));
        let n: Vec<usize> = row
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert_eq!(n.iter().sum::<usize>(), 3, "{row}");
    }
    assert!(out.contains("6 mutants: "), "{out}");
    // sigmoid_forward's bound (`i > n`) survives, and is reviewed: with a
    // list that does not hold it, the same run fails and names the list
    let dir = std::env::temp_dir().join(format!("postergrad-eq-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("none.txt");
    std::fs::write(&empty, "# nothing reviewed\n").unwrap();
    let e = empty.display().to_string();
    let sigmoid = [
        "gradcheck",
        "--mutants",
        "5",
        "--seed",
        "1",
        "--op",
        "sigmoid",
    ];
    let (ok, out, err) = postergrad(&sigmoid, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("survivor (reviewed, equivalent: "), "{out}");
    let (ok, out, _) = postergrad(&[&sigmoid[..], &["--equivalents", &e]].concat(), &[]);
    assert!(!ok, "{out}");
    assert!(out.contains("SURVIVOR: sigmoid_forward:"), "{out}");
    assert!(
        out.contains(&format!("not on the reviewed list ({e})")),
        "{out}"
    );
    // a malformed list is refused, naming its file and line
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, "# a comment\nsigmoid_forward | a | b\n").unwrap();
    let b = bad.display().to_string();
    let (ok, _, err) = postergrad(&[&sigmoid[..], &["--equivalents", &b]].concat(), &[]);
    assert!(
        !ok && err.contains(&format!("{b}, line 2: expected")),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_whole_model_check_passes_and_names_the_tensor_a_broken_kernel_spoils() {
    let (ok, out, err) = postergrad(
        &[
            "gradcheck",
            "--model",
            "poster",
            "--size",
            "48",
            "--batch",
            "4",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    // one row per parameter tensor: 4 conv + 6 batch norm + 3 dense, kernel and bias / γ and β
    assert!(out.contains("26 checks: 26 passed, 0 failed"), "{out}");
    assert!(
        out.contains("ddense_2.kernel along 2 random directions vs"),
        "{out}"
    );
    // the block tail's input gradient with a sign flipped in half of each row
    let dir = broken_shader_dir(
        "model",
        "bnpool_backward_input",
        "let d_hi = f.k * dy.hi + f.k0",
        "let d_hi = f.k * dy.hi - f.k0",
    );
    let d = dir.display().to_string();
    let (ok, out, _) = postergrad(
        &[
            "gradcheck",
            "--model",
            "poster",
            "--size",
            "48",
            "--batch",
            "4",
            "--shader-dir",
            &d,
        ],
        &[],
    );
    assert!(!ok, "{out}");
    // the tensors before the last conv block's tail fail; the head's pass
    assert!(
        out.lines()
            .any(|l| l.contains("dconv2d.kernel along") && l.ends_with("FAIL")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("ddense_2.kernel along") && l.ends_with("pass")),
        "{out}"
    );
    assert!(out.contains("re-run this case alone: postergrad gradcheck --model poster --size 48 --batch 4 --seed 0"), "{out}");
}

#[test]
fn gradcheck_list_names_every_case_a_run_checks() {
    // the ops with rows of their own beside the cases: BCE's clipped band,
    // max-pool's ties, batch norm's inference rows, Adam's steps
    let ops = "relu,bce,maxpool,batchnorm,adam";
    let (ok, listed, err) = postergrad(&["gradcheck", "--list", "--op", ops], &[]);
    assert!(ok, "{err}");
    let listed: std::collections::BTreeSet<(String, String)> = listed
        .lines()
        .map(|l| {
            let (op, shape) = l.split_once(' ').expect("op and shape");
            (op.to_string(), shape.trim().to_string())
        })
        .collect();
    let (ok, out, err) = postergrad(&["gradcheck", "--op", ops, "--fast", "--json"], &[]);
    assert!(ok, "{out}{err}");
    let run: std::collections::BTreeSet<(String, String)> = out
        .lines()
        .map(|l| {
            let row: serde_json::Value = serde_json::from_str(l).expect("one JSON object per line");
            (
                row["op"].as_str().unwrap().to_string(),
                row["shape"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(listed, run);
    assert!(run.iter().any(|(_, s)| s.ends_with(" ties")));
    assert!(run.iter().any(|(_, s)| s.ends_with(" infer torch")));
}
