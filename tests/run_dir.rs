//! A run directory under stress: a full disk while saving, and two runs
//! started on the same directory. Nothing already written is lost or
//! damaged. docs/reliability.md lists the messages.

mod common;

use std::process::{Command, Stdio};

use common::{cli, tmp};
use postergrad::checkpoint::Checkpoint;

fn run_args<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut a = common::QUICK_RUN.to_vec();
    a.extend(["--out", out, "--epochs", epochs]);
    a
}

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_full_disk_while_saving_names_the_file_and_keeps_the_last_checkpoint() {
    let dir = tmp("fulldisk");
    let out = dir.join("run");
    let o = out.display().to_string();
    let (code, _, err) = cli(&run_args(&o, "1"));
    assert_eq!(code, Some(0), "{err}");
    let model = std::fs::read(out.join("model.safetensors")).unwrap();
    let state = std::fs::read(out.join("train_state.safetensors")).unwrap();
    // The disk fills: no file may grow past half the model (a file-size
    // limit, with SIGXFSZ ignored so that the write fails with EFBIG as a
    // write to a full disk fails with ENOSPC).
    let limit_blocks = model.len() / 2 / 1024;
    let mut args = run_args(&o, "2");
    args.push("--resume");
    let script = format!("ulimit -f {limit_blocks}; trap '' XFSZ; exec \"$0\" \"$@\"");
    let result = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_postergrad"))
        .args(&args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{err}");
    let path = out.join("model.safetensors").display().to_string();
    assert!(
        err.contains(&format!(
            "error: training stopped at epoch 2, saving: could not write {path}: the file would \
             pass this process's file-size limit (ulimit -f); the previous {path} is unchanged \
             (files are written whole to a temporary, then renamed); free some space and \
             continue the run"
        )),
        "{err}"
    );
    assert!(err.contains("(after epoch 1, step 22), is intact"), "{err}");
    // Both checkpoints are byte for byte what epoch 1 wrote, and load.
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), model);
    assert_eq!(
        std::fs::read(out.join("train_state.safetensors")).unwrap(),
        state
    );
    assert_eq!(
        Checkpoint::load(&out.join("model.safetensors"))
            .unwrap()
            .info
            .epoch,
        1
    );
    // No temporary is left behind.
    let names: Vec<String> = files(&out).into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
    // With room again, the run continues.
    let (code, stdout, err) = cli(&args);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.contains("epoch  2/2"), "{stdout}");
}

#[test]
fn a_second_run_on_a_busy_run_directory_is_refused() {
    let dir = tmp("busy");
    let out = dir.join("run");
    let o = out.display().to_string();
    // The first run: long enough to be busy while the others try.
    let mut first = Command::new(env!("CARGO_BIN_EXE_postergrad"))
        .args(run_args(&o, "40"))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lock = out.join(".lock");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(
            started.elapsed().as_secs() < 60,
            "the first run never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let refused = format!(
        "error: --out {o}: another postergrad run (pid {}) is using this run directory; wait \
         for it to finish or stop it (Ctrl-C saves its state), or choose another --out",
        first.id()
    );
    for extra in [&[][..], &["--resume"][..], &["--force"][..]] {
        let mut args = run_args(&o, "40");
        args.extend(extra);
        let (code, _, err) = cli(&args);
        assert_eq!(code, Some(1), "{extra:?}: {err}");
        assert!(err.contains(&refused), "{extra:?}: {err}");
    }
    // The first run is unharmed: stop it (Ctrl-C) and check what it wrote.
    Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap();
    let status = first.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(first.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        matches!(status.code(), Some(130) | Some(0)),
        "{status:?}: {err}"
    );
    let state = Checkpoint::load(&out.join("train_state.safetensors")).unwrap();
    assert!(state.info.step > 0);
    // Once it has stopped, the directory is free: --resume continues it
    // to the end of the next epoch.
    let epochs = (state.info.epoch + 1).to_string();
    let mut args = run_args(&o, &epochs);
    args.push("--resume");
    let (code, stdout, err) = cli(&args);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        stdout.contains(&format!("epoch {epochs:>2}/{epochs}")),
        "{stdout}"
    );
}
