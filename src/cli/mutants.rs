//! `postergrad gradcheck --mutants N`: the suite's own strength. Each
//! mutant of a kernel (`gradcheck::mutants`) runs in a child process
//! (`gradcheck --op OP --shader-dir DIR --fast`), so that a mutant which
//! hangs the device is killed after a timeout instead of hanging the run.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use postergrad::gradcheck::{self, mutants};
use postergrad::ops::registry;
use postergrad::{shaders, Gpu};

/// The reviewed equivalent mutants (one line of reasoning each).
const EQUIVALENTS: &str = include_str!("../../tests/equivalent_mutants.txt");

/// How long one mutant's checks may run: a mutated loop bound can spin.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Killed,
    Survived,
    Invalid,
}

/// Runs up to `per_kernel` mutants of every kernel of `ops` and reports
/// killed / survived / invalid per kernel, then each survivor. Fails
/// (exit 1) when a survivor is not on the reviewed list.
pub fn run(
    gpu: &Gpu,
    ops: &[&str],
    per_kernel: usize,
    seed: u64,
    dtype: &str,
    equivalents: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let (list, text) = match equivalents {
        None => (
            "tests/equivalent_mutants.txt".to_string(),
            EQUIVALENTS.to_string(),
        ),
        Some(path) => (
            path.display().to_string(),
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the reviewed list {}", path.display()))?,
        ),
    };
    let reviewed = mutants::equivalents(&list, &text)?;
    let exe = std::env::current_exe().context("finding the postergrad binary")?;
    let dir = std::env::temp_dir().join(format!("postergrad-mutants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let started = Instant::now();
    let mut survivors: Vec<mutants::Mutant> = Vec::new();
    let mut unreached: Vec<&str> = Vec::new();
    let (mut killed, mut survived, mut invalid) = (0, 0, 0);
    println!(
        "{:<38} {:>6} {:>8} {:>8}",
        "kernel", "killed", "survived", "invalid"
    );
    for &op in ops {
        // the unmutated suite must pass, and tells which kernels it reaches
        let options = gradcheck::Options {
            seed,
            ops: Some(vec![op.to_string()]),
            fast: true,
            ..Default::default()
        };
        if !gradcheck::run(gpu, &options)?.passed() {
            anyhow::bail!("gradcheck --op {op} fails without any mutant: fix that first");
        }
        let reached = gpu.kernels_compiled();
        let entry = registry::OPS
            .iter()
            .find(|o| o.name == op)
            .expect("a registry op");
        for k in entry.kernels {
            if !reached.contains(&k.name) {
                unreached.push(k.name);
                continue;
            }
            let source = shaders::standalone(k.name)?;
            let (mut kk, mut ks, mut ki) = (0, 0, 0);
            for m in mutants::mutants(k.name, &source, per_kernel, seed, gpu.precision()) {
                std::fs::write(dir.join(format!("{}.wgsl", k.name)), m.apply(&source))?;
                match fate(&exe, &dir, op, k.name, seed, dtype)? {
                    Fate::Killed => kk += 1,
                    Fate::Invalid => ki += 1,
                    Fate::Survived => {
                        ks += 1;
                        survivors.push(m);
                    }
                }
            }
            let _ = std::fs::remove_file(dir.join(format!("{}.wgsl", k.name)));
            println!("{:<38} {kk:>6} {ks:>8} {ki:>8}", k.name);
            (killed, survived, invalid) = (killed + kk, survived + ks, invalid + ki);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\n{} mutants: {killed} killed, {survived} survived, {invalid} invalid (did not compile); score {:.1} % of the valid ones, in {:.0} s",
        killed + survived + invalid,
        100.0 * killed as f64 / (killed + survived).max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    if !unreached.is_empty() {
        println!(
            "not run by this adapter's checks (no mutant of them can be caught here): {}",
            unreached.join(", ")
        );
    }
    let mut unexplained = 0;
    for m in &survivors {
        match reviewed.iter().find(|e| e.matches(m)) {
            Some(e) => println!(
                "survivor (reviewed, equivalent: {}): {}",
                e.reason,
                m.diff()
            ),
            None => {
                unexplained += 1;
                println!("SURVIVOR: {}", m.diff());
            }
        }
    }
    if unexplained > 0 {
        println!(
            "{unexplained} survivor(s) not on the reviewed list ({list}): a gap in the \
             checks, or an equivalent mutant to review and list with its reason"
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the op's checks with one kernel replaced by its mutant.
fn fate(
    exe: &Path,
    dir: &Path,
    op: &str,
    kernel: &str,
    seed: u64,
    dtype: &str,
) -> anyhow::Result<Fate> {
    // stderr to a file, not a pipe: a pipe the parent does not drain while
    // it polls could fill and stall the child until the timeout
    let log = dir.join("mutant.stderr");
    let mut child = Command::new(exe)
        .args([
            "gradcheck",
            "--fast",
            "--op",
            op,
            "--dtype",
            dtype,
            "--seed",
        ])
        .arg(seed.to_string())
        .arg("--shader-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).context("creating the mutant's log")?)
        .spawn()
        .context("starting a mutant's checks")?;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            if status.success() {
                return Ok(Fate::Survived);
            }
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            // a compile error names the shader; a failed check or a GPU
            // error is the suite catching the mutant
            return Ok(if err.contains(&format!("shaders/{kernel}.wgsl")) {
                Fate::Invalid
            } else {
                Fate::Killed
            });
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(Fate::Killed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
