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
        (vec!["train", "--batch", "0"], "--batch: must be at least 1"),
        (
            vec!["train", "--lr", "-1"],
            "learning rate: must be a positive number, got -1",
        ),
        (
            vec!["train", "--lr", "NaN"],
            "learning rate: must be a positive number, got NaN",
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
