//! The gradient-check suite: usable as a library, from tests, and as
//! `postergrad gradcheck`.
//!
//! For every op and every shape in its [`Case`] list, four checks:
//! 1. **forward vs f64 reference** — the GPU forward against the plain-loop CPU
//!    reference in f64;
//! 2. **d<input> vs f64 reference** — the GPU backward (vᵀJ for a random v)
//!    against the reference backward;
//! 3. **d<input> vs f32 central differences** — the GPU backward against
//!    central differences of the *GPU forward*: element by element for small
//!    tensors, along directions u for large ones (vᵀJu, as PyTorch's fast
//!    mode and JAX do): the analytic gradient's own direction plus random
//!    ±1/√n directions;
//! 4. **d<input> ref vs f64 central differences** — the reference backward
//!    against central differences of the reference forward (eps 1e-6).
//!
//! Inputs keep a margin from kinks (relu at 0, bce at 0/1) so that finite
//! differences tell the truth there; the behaviour *at* the kinks is pinned
//! by separate tests. `docs/gradcheck.md` explains the tolerances.

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::ops::{self, AdamConfig};
use crate::rng::Rng;
use crate::shaders::Precision;
use crate::tape::{Mode, Tape, Var};
use crate::tensor::Tensor;

/// |a − b| ≤ atol + rtol·|b| (numpy's allclose, b the trusted value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub atol: f64,
    pub rtol: f64,
}

impl Tolerance {
    /// How far |a − b| lies beyond atol + rtol·|b| (positive: out of
    /// tolerance); +∞ when a or b is NaN, which never passes.
    pub fn excess(&self, a: f64, b: f64) -> f64 {
        let e = (a - b).abs() - (self.atol + self.rtol * b.abs());
        if e.is_nan() {
            f64::INFINITY
        } else {
            e
        }
    }
}

impl fmt::Display for Tolerance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "atol {:.0e} rtol {:.0e}", self.atol, self.rtol)
    }
}

/// One line of the report.
#[derive(Clone, Debug)]
pub struct Row {
    pub op: String,
    pub shape: String,
    pub check: String,
    pub max_abs: f64,
    pub max_rel: f64,
    pub tol: Tolerance,
    pub passed: bool,
    /// The worst element: (index, tested value, trusted value).
    pub worst: Option<(usize, f64, f64)>,
    /// The first elements out of tolerance (index, tested, trusted) — or,
    /// when every element passed, simply the first elements — at most
    /// [`SHOWN_ELEMENTS`], for `gradcheck --verbose` and failure reports.
    pub first: Vec<(usize, f64, f64)>,
}

/// How many elements a failure report (or `--verbose`) lists per check.
pub const SHOWN_ELEMENTS: usize = 5;

impl Row {
    /// Compares `got` against the trusted `want` and makes the report line.
    pub fn new(
        op: &str,
        shape: &str,
        check: &str,
        got: &[f64],
        want: &[f64],
        tol: Tolerance,
    ) -> Row {
        let (max_abs, max_rel, passed, worst) = compare(got, want, tol);
        let outside = |(&a, &b): (&f64, &f64)| tol.excess(a, b) > 0.0;
        let pairs = got.iter().zip(want);
        let mut first: Vec<(usize, f64, f64)> = pairs
            .clone()
            .enumerate()
            .filter(|(_, p)| outside(*p))
            .take(SHOWN_ELEMENTS)
            .map(|(i, (&a, &b))| (i, a, b))
            .collect();
        if first.is_empty() {
            first = pairs
                .take(SHOWN_ELEMENTS)
                .enumerate()
                .map(|(i, (&a, &b))| (i, a, b))
                .collect();
        }
        Row {
            op: op.to_string(),
            shape: shape.to_string(),
            check: check.to_string(),
            max_abs,
            max_rel,
            tol,
            passed,
            worst,
            first,
        }
    }
}

/// Compares `got` against the trusted `want`.
pub fn compare(
    got: &[f64],
    want: &[f64],
    tol: Tolerance,
) -> (f64, f64, bool, Option<(usize, f64, f64)>) {
    let (mut max_abs, mut max_rel, mut passed) = (0.0f64, 0.0f64, got.len() == want.len());
    let mut worst: Option<(usize, f64, f64)> = None;
    let mut worst_excess = f64::NEG_INFINITY;
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        let d = (a - b).abs();
        let d = if d.is_nan() { f64::INFINITY } else { d };
        max_abs = max_abs.max(d);
        if b.abs() > tol.atol {
            max_rel = max_rel.max(d / b.abs());
        }
        let excess = tol.excess(a, b);
        if excess > 0.0 {
            passed = false;
        }
        if excess > worst_excess {
            worst_excess = excess;
            worst = Some((i, a, b));
        }
    }
    (max_abs, max_rel, passed, worst)
}

/// One input of a case.
pub struct Input {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    /// Whether the op's gradient with respect to it is checked.
    pub grad: bool,
}

type GpuForward = Box<dyn Fn(&Tape, &[Var]) -> Result<Var>>;
type CpuForward = Box<dyn Fn(&[Vec<f64>]) -> Vec<f64>>;
type CpuBackward = Box<dyn Fn(&[Vec<f64>], &[f64]) -> Vec<Option<Vec<f64>>>>;

/// One op at one shape, with everything needed to check it.
pub struct Case {
    pub op: &'static str,
    pub shape: String,
    pub inputs: Vec<Input>,
    pub gpu: GpuForward,
    pub cpu_forward: CpuForward,
    /// Gradient per input (None where not differentiable) for upstream dy.
    pub cpu_backward: CpuBackward,
    /// GPU vs f64 reference (forward and backward); atol is raised to the
    /// f32 rounding floor of the case (see [`rounding_floor`]).
    pub ref_tol: Tolerance,
    /// Finite-difference step for the f32 check.
    pub fd_eps: f64,
    /// Tolerance of the f32 central-difference check; atol is raised to the
    /// rounding noise of the differenced forward (see [`fd_noise`]).
    pub fd_tol: Tolerance,
    /// The longest sum any of the op's kernels accumulates in f32 (dense: max
    /// of in, out and batch; bce: every element; elementwise ops: 1).
    pub reduction: usize,
    /// The length of the sum behind one forward output (dense: in; conv2d:
    /// Cin·KH·KW; bce: every element; elementwise ops: 1): the rounding
    /// noise of the finite differences comes from these sums.
    pub forward_reduction: usize,
}

/// Unit roundoff of f32 and f64.
const U32: f64 = 5.960_464_477_539_063e-8; // 2^-24
const U64: f64 = 1.110_223_024_625_156_5e-16; // 2^-53

/// The unit roundoff of a precision.
fn unit_roundoff(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => U32,
        Precision::F64 => U64,
    }
}

/// The absolute error arithmetic with unit roundoff `unit` alone can leave
/// in a value of magnitude `scale` produced by sums of `reduction` terms:
/// 4·u·√reduction·scale (rounding errors of a sum grow like a random walk).
pub fn rounding_floor(unit: f64, reduction: usize, scale: f64) -> f64 {
    4.0 * unit * (reduction as f64).sqrt() * scale
}

/// The noise of a central difference (f(x+εu)·v − f(x−εu)·v)/2ε that
/// rounding alone causes: each output y_i carries a rounding error of about
/// u·√reduction·|y_i|, so the probed sum carries √2·‖v∘y‖₂ times that,
/// divided by 2ε; four times this is the floor of the check's atol.
pub fn fd_noise(unit: f64, reduction: usize, v: &[f64], y: &[f64], eps: f64) -> f64 {
    let vy: f64 = v
        .iter()
        .zip(y)
        .map(|(a, b)| (a * b).powi(2))
        .sum::<f64>()
        .sqrt();
    4.0 * unit * (reduction as f64).sqrt() * std::f64::consts::SQRT_2 * vy / (2.0 * eps)
}

/// Options of a suite run.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub seed: u64,
    /// Only these ops (all when None).
    pub ops: Option<Vec<String>>,
}

/// The suite's result.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn failures(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.passed).collect()
    }
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.passed)
    }
    /// Ok when every row passed, else the typed failure.
    pub fn into_result(self) -> Result<Report> {
        let failed = self.failures();
        if failed.is_empty() {
            return Ok(self);
        }
        let mut names: Vec<String> = failed
            .iter()
            .map(|r| format!("{} {}", r.op, r.check))
            .collect();
        names.dedup();
        Err(Error::GradcheckFailed {
            failed: failed.len(),
            total: self.rows.len(),
            names: names.join(", "),
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<8} {:<22} {:<34} {:>10} {:>10}  {:<20} result",
            "op", "shape", "check", "max abs", "max rel", "tolerance"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<8} {:<22} {:<34} {:>10.2e} {:>10.2e}  {:<20} {}",
                r.op,
                r.shape,
                r.check,
                r.max_abs,
                r.max_rel,
                r.tol.to_string(),
                if r.passed { "pass" } else { "FAIL" }
            )?;
        }
        let failed = self.failures().len();
        write!(
            f,
            "{} checks: {} passed, {} failed",
            self.rows.len(),
            self.rows.len() - failed,
            failed
        )
    }
}

impl Report {
    /// Element by element, as llm.c's checker prints them: for every failed
    /// check (every check when `all`), its first elements out of tolerance
    /// — index, the tested (analytic / GPU) value, the trusted (numeric /
    /// f64 reference) value and their difference. Passing checks list
    /// their first elements.
    pub fn details(&self, all: bool) -> String {
        let mut out = String::new();
        for r in self.rows.iter().filter(|r| all || !r.passed) {
            out += &format!(
                "{} {} {} — {}:\n    {:>8} {:>16} {:>16} {:>12}\n",
                r.op,
                r.shape,
                r.check,
                if r.passed {
                    "first elements (all within tolerance)"
                } else {
                    "first elements out of tolerance"
                },
                "index",
                "tested",
                "trusted",
                "difference"
            );
            for &(i, a, b) in &r.first {
                out += &format!("    {i:>8} {a:>16.8e} {b:>16.8e} {:>12.3e}\n", a - b);
            }
        }
        out
    }
}

/// Runs the suite. Errors only on GPU failures; check results are in the report.
pub fn run(gpu: &Gpu, options: &Options) -> Result<Report> {
    let known = crate::ops::registry::gradcheck_ops();
    let selected: Vec<&str> = match &options.ops {
        None => known,
        Some(names) => {
            for n in names {
                if !known.contains(&n.as_str()) {
                    return Err(Error::Config {
                        what: format!("gradcheck --op {n}"),
                        message: format!("unknown op; known ops: {}", known.join(", ")),
                    });
                }
            }
            known
                .into_iter()
                .filter(|o| names.iter().any(|n| n == o))
                .collect()
        }
    };
    let mut report = Report::default();
    for op in selected {
        if op == "adam" {
            report.rows.extend(check_adam(gpu, options.seed)?);
            continue;
        }
        if op == "batchnorm" {
            report
                .rows
                .extend(check_batchnorm_inference(gpu, options.seed)?);
        }
        for case in cases(op, options.seed) {
            report.rows.extend(check_case(gpu, &case, options.seed)?);
        }
    }
    Ok(report)
}

/// Elementwise checks up to this many elements; random directions beyond.
const ELEMENTWISE_MAX: usize = 64;
/// Random directions for large tensors (besides the gradient's own).
const DIRECTIONS: usize = 3;
/// GPU vs f64 reference for ops without long sums (relu, sigmoid, bce,
/// maxpool, dropout); atol is then raised to each case's rounding floor.
const REF_TOL_ELEMENTWISE: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-5,
};
/// GPU vs f64 reference for ops built on long f32 sums (dense, conv2d, batchnorm).
const REF_TOL_SUMS: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-4,
};
/// Step of the f32 central differences (GUIDE §4: 1e-2…1e-3 in f32).
const FD_EPS: f64 = 1e-2;
/// f32 central differences; atol is raised to the noise of the difference.
const FD_TOL: Tolerance = Tolerance {
    atol: 1e-5,
    rtol: 1e-2,
};
/// f64 kernels (`--dtype f64`) vs the f64 reference: both compute in f64,
/// so only rounding separates them (atol is raised to the case's f64
/// rounding floor, as in f32).
const REF_TOL_F64: Tolerance = Tolerance {
    atol: 1e-12,
    rtol: 1e-9,
};
/// f64 kernels vs f64 central differences of themselves: PyTorch
/// gradcheck's own settings (eps 1e-6, atol 1e-5, rtol 1e-3).
const F64_FD_EPS: f64 = 1e-6;
const F64_FD_TOL: Tolerance = Tolerance {
    atol: 1e-5,
    rtol: 1e-3,
};
/// f64 finite differences of the reference.
const REF_FD_EPS: f64 = 1e-6;
const REF_FD_TOL: Tolerance = Tolerance {
    atol: 1e-10,
    rtol: 1e-6,
};

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Σ a_i·b_i with Neumaier's compensated summation: a probe v·f(x ± εu)
/// sums up to millions of terms, and in plain f64 their rounding (≈ u·Σ|terms|,
/// divided by 2ε = 2e-6) would reach the 1e-5 of the f64 check by itself.
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let term = x * y;
        let t = sum + term;
        carry += if sum.abs() >= term.abs() {
            (sum - t) + term
        } else {
            (term - t) + sum
        };
        sum = t;
    }
    sum + carry
}

/// Runs the case's GPU forward on the given input values (nothing recorded;
/// an f32 device rounds them to f32).
fn gpu_eval(gpu: &Gpu, case: &Case, values: &[Vec<f64>]) -> Result<Vec<f64>> {
    let tape = Tape::new(gpu, Mode::Training);
    let vars = case
        .inputs
        .iter()
        .zip(values)
        .map(|(i, v)| Ok(tape.constant(Tensor::from_slice(gpu, i.shape.clone(), v)?)))
        .collect::<Result<Vec<_>>>()?;
    (case.gpu)(&tape, &vars)?.value.to_vec_f64(gpu)
}

/// The probing directions for an input of `n` elements: unit vectors, or the
/// gradient's direction plus random ±1/√n.
fn directions(n: usize, grad: &[f64], rng: &mut Rng) -> Vec<Vec<f64>> {
    if n <= ELEMENTWISE_MAX {
        return (0..n)
            .map(|i| {
                let mut u = vec![0.0; n];
                u[i] = 1.0;
                u
            })
            .collect();
    }
    let mut out = Vec::new();
    let norm = dot(grad, grad).sqrt();
    if norm > 0.0 {
        out.push(grad.iter().map(|g| g / norm).collect());
    }
    let s = 1.0 / (n as f64).sqrt();
    for _ in 0..DIRECTIONS {
        out.push(
            (0..n)
                .map(|_| if rng.uniform() < 0.5 { -s } else { s })
                .collect(),
        );
    }
    out
}

/// The four checks of one case, in the device's precision: f32 with the
/// case's own step and tolerances, f64 with PyTorch gradcheck's.
pub fn check_case(gpu: &Gpu, case: &Case, seed: u64) -> Result<Vec<Row>> {
    let mut rng = Rng::new(seed ^ 0xD1CE);
    let mut rows = Vec::new();
    let row = |check: String, got: &[f64], want: &[f64], tol: Tolerance| {
        Row::new(case.op, &case.shape, &check, got, want, tol)
    };
    let precision = gpu.precision();
    let unit = unit_roundoff(precision);
    let (case_ref_tol, fd_eps, case_fd_tol) = match precision {
        Precision::F32 => (case.ref_tol, case.fd_eps, case.fd_tol),
        Precision::F64 => (REF_TOL_F64, F64_FD_EPS, F64_FD_TOL),
    };
    let x64: Vec<Vec<f64>> = case.inputs.iter().map(|i| to64(&i.data)).collect();

    // 1. forward against the f64 reference.
    let tape = Tape::new(gpu, Mode::Training);
    let vars = case
        .inputs
        .iter()
        .map(|i| {
            let t = Tensor::from_slice(gpu, i.shape.clone(), &i.data)?;
            Ok(if i.grad {
                tape.leaf(t)
            } else {
                tape.constant(t)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let out = (case.gpu)(&tape, &vars)?;
    let y_gpu = out.value.to_vec_f64(gpu)?;
    let y64 = (case.cpu_forward)(&x64);
    let ref_tol = |want: &[f64]| Tolerance {
        atol: case_ref_tol.atol.max(rounding_floor(
            unit,
            case.reduction,
            want.iter().fold(0.0f64, |m, x| m.max(x.abs())),
        )),
        rtol: case_ref_tol.rtol,
    };
    rows.push(row(
        "forward vs f64 reference".into(),
        &y_gpu,
        &y64,
        ref_tol(&y64),
    ));

    // 2. backward (vᵀJ) against the f64 reference.
    let v64 = to64(&rng.vec_f32(y_gpu.len(), -1.0, 1.0));
    let seed_t = Tensor::from_slice(gpu, out.shape().clone(), &v64)?;
    let grads = tape.backward_with(&out, seed_t)?;
    let ref_grads = (case.cpu_backward)(&x64, &v64);
    for (k, input) in case.inputs.iter().enumerate() {
        if !input.grad {
            continue;
        }
        let g_gpu = grads
            .get(&vars[k])
            .ok_or_else(|| Error::Gpu(format!("{}: no gradient reached {}", case.op, input.name)))?
            .to_vec_f64(gpu)?;
        let g_ref = ref_grads[k]
            .clone()
            .expect("reference backward covers every checked input");
        rows.push(row(
            format!("d{} vs f64 reference", input.name),
            &g_gpu,
            &g_ref,
            ref_tol(&g_ref),
        ));

        // 3. GPU backward vs central differences of the GPU forward (in the
        //    device's precision);
        // 4. reference backward vs f64 central differences of the reference.
        let dirs = directions(input.data.len(), &g_gpu, &mut rng);
        let (mut ana, mut num, mut ana_ref, mut num_ref) = (vec![], vec![], vec![], vec![]);
        for u in &dirs {
            let mut plus = x64.clone();
            let mut minus = x64.clone();
            for (j, &uj) in u.iter().enumerate() {
                plus[k][j] += fd_eps * uj;
                minus[k][j] -= fd_eps * uj;
            }
            let fp = dot(&gpu_eval(gpu, case, &plus)?, &v64);
            let fm = dot(&gpu_eval(gpu, case, &minus)?, &v64);
            num.push((fp - fm) / (2.0 * fd_eps));
            ana.push(dot(&g_gpu, u));

            let mut plus = x64.clone();
            let mut minus = x64.clone();
            for (j, &uj) in u.iter().enumerate() {
                plus[k][j] += REF_FD_EPS * uj;
                minus[k][j] -= REF_FD_EPS * uj;
            }
            let fp = dot(&(case.cpu_forward)(&plus), &v64);
            let fm = dot(&(case.cpu_forward)(&minus), &v64);
            num_ref.push((fp - fm) / (2.0 * REF_FD_EPS));
            ana_ref.push(dot(&g_ref, u));
        }
        let how = if dirs.len() == input.data.len() && input.data.len() <= ELEMENTWISE_MAX {
            "elementwise"
        } else {
            "directions"
        };
        // f32: atol is raised to the rounding noise of the differenced
        // forward; f64: PyTorch's tolerances exactly, never raised.
        let fd_tol = match precision {
            Precision::F32 => Tolerance {
                atol: case_fd_tol.atol.max(fd_noise(
                    unit,
                    case.forward_reduction,
                    &v64,
                    &y_gpu,
                    fd_eps,
                )),
                rtol: case_fd_tol.rtol,
            },
            Precision::F64 => case_fd_tol,
        };
        rows.push(row(
            format!("d{} vs {precision} central diff ({how})", input.name),
            &ana,
            &num,
            fd_tol,
        ));
        // The f64 reference computes each output exactly enough; its noise is
        // the rounding of the probed dot product over all outputs.
        let ref_fd_tol = Tolerance {
            atol: REF_FD_TOL.atol.max(fd_noise(
                U64,
                case.reduction.max(y64.len()),
                &v64,
                &y64,
                REF_FD_EPS,
            )),
            rtol: REF_FD_TOL.rtol,
        };
        rows.push(row(
            format!("d{} ref vs f64 central diff", input.name),
            &ana_ref,
            &num_ref,
            ref_fd_tol,
        ));
    }
    Ok(rows)
}

/// Adam has no backward: three GPU steps against three f64 reference steps,
/// then (in f32, where the non-finite guard exists) a fourth step whose
/// gradient holds a NaN and must change nothing.
/// The parameter counts `check_adam` updates.
const ADAM_SIZES: [usize; 3] = [1, 1000, 40_000];

/// Every case the suite would check for `ops` (all when None), as (op,
/// shape), without running anything: `postergrad gradcheck --list`.
pub fn list(ops: Option<&[String]>, seed: u64) -> Vec<(&'static str, String)> {
    crate::ops::registry::gradcheck_ops()
        .into_iter()
        .filter(|op| ops.is_none_or(|names| names.iter().any(|n| n == op)))
        .flat_map(|op| -> Vec<(&'static str, String)> {
            if op == "adam" {
                ADAM_SIZES
                    .iter()
                    .map(|n| ("adam", format!("[{n}]")))
                    .collect()
            } else {
                cases(op, seed).into_iter().map(|c| (op, c.shape)).collect()
            }
        })
        .collect()
}

pub fn check_adam(gpu: &Gpu, seed: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut rng = Rng::new(seed ^ 0xADA3);
    let config = AdamConfig::default();
    let f32_device = gpu.precision() == Precision::F32;
    for n in ADAM_SIZES {
        let p0 = rng.vec_f32(n, -1.0, 1.0);
        let p = Tensor::from_slice(gpu, [n], &p0)?;
        let m = Tensor::zeros(gpu, [n], "adam m")?;
        let v = Tensor::zeros(gpu, [n], "adam v")?;
        let guard = ops::nonfinite::Counters::new(gpu, 1)?;
        let (mut p64, mut m64, mut v64) = (to64(&p0), vec![0.0; n], vec![0.0; n]);
        for t in 1..=3u64 {
            let g = rng.vec_f32(n, -1.0, 1.0);
            let gt = Tensor::from_slice(gpu, [n], &g)?;
            ops::adam::adam_step(gpu, &config, t, &gt, &p, (&m, &v), &guard)?;
            ops::adam::cpu::adam_step(&config, t, &to64(&g), &mut p64, &mut m64, &mut v64);
        }
        let mut g = rng.vec_f32(n, -1.0, 1.0);
        if f32_device {
            // The guard counts the NaN and the update leaves p, m and v
            // exactly as they were.
            g[n / 2] = f32::NAN;
            let gt = Tensor::from_slice(gpu, [n], &g)?;
            guard.count(gpu, &gt, 1)?;
            ops::adam::adam_step(gpu, &config, 4, &gt, &p, (&m, &v), &guard)?;
        }
        let (tol, steps) = match gpu.precision() {
            Precision::F32 => (
                Tolerance {
                    atol: 1e-6,
                    rtol: 1e-5,
                },
                "3 steps + 1 NaN-guarded",
            ),
            Precision::F64 => (REF_TOL_F64, "3 steps"),
        };
        for (name, gpu_t, want) in [("p", &p, &p64), ("m", &m, &m64), ("v", &v, &v64)] {
            let got = gpu_t.to_vec_f64(gpu)?;
            let check = format!("{name} after {steps} vs f64 reference");
            rows.push(Row::new("adam", &format!("[{n}]"), &check, &got, want, tol));
        }
    }
    Ok(rows)
}

/// The shapes each op is checked at: batch 1, sizes that are not multiples of
/// the workgroup or tile size, and tensors with tens of thousands of elements.
pub fn cases(op: &str, seed: u64) -> Vec<Case> {
    let mut rng = Rng::new(seed);
    match op {
        "dense" => [(1, 7, 5), (3, 33, 17), (32, 128, 25), (32, 2048, 25)]
            .into_iter()
            .map(|(r, k, c)| dense_case(&mut rng, r, k, c))
            .collect(),
        "relu" => [vec![1, 1], vec![3, 37], vec![64, 1000]]
            .into_iter()
            .map(|s| {
                let n = s.iter().product();
                unary_case(
                    "relu",
                    s,
                    rng.vec_away_from_zero(n, 0.1, 2.0),
                    ops::relu::relu,
                    ops::relu::cpu::relu_forward,
                    ops::relu::cpu::relu_backward,
                )
            })
            .collect(),
        "sigmoid" => [vec![1, 1], vec![3, 37], vec![64, 1000]]
            .into_iter()
            .map(|s| {
                let n = s.iter().product();
                unary_case(
                    "sigmoid",
                    s,
                    rng.vec_f32(n, -6.0, 6.0),
                    ops::sigmoid::sigmoid,
                    ops::sigmoid::cpu::sigmoid_forward,
                    ops::sigmoid::cpu::sigmoid_backward,
                )
            })
            .collect(),
        "conv2d" => {
            use ops::conv2d::Padding::{Same, Valid};
            // (n, cin, h, w, cout, k, stride, padding)
            [
                (1, 1, 5, 5, 2, 3, 1, Valid),
                (2, 3, 9, 7, 5, 3, 1, Valid),
                (2, 3, 11, 9, 4, 5, 1, Valid),
                (1, 3, 9, 9, 3, 3, 2, Valid),
                (2, 2, 8, 7, 3, 3, 2, Same),
                (1, 3, 7, 7, 2, 5, 1, Same),
                // 3×3 stride 1 with padding: the row-sliding weight gradient
                // reads zeros at every edge of the window
                (2, 3, 8, 9, 4, 3, 1, Same),
                (2, 16, 20, 20, 9, 3, 1, Valid),
                // the subgroup weight gradient (8+ input channels): 12 input
                // channels leave lanes with none, 20 outputs a partial tile
                // of 16, width 11 a row that ends mid-step
                (2, 12, 13, 11, 20, 3, 1, Same),
                // and its pixel chunks: 4,624 output pixels, 2 chunks
                (1, 8, 70, 70, 16, 3, 1, Valid),
                // 18,432 inputs (4,608 texels): the texture copy's second
                // row, read by the strips kernel (5×5 runs it on every adapter)
                (1, 2, 96, 96, 3, 5, 1, Same),
                // 4,624 output pixels: the split weight/bias sums use 2 chunks
                (1, 3, 70, 70, 2, 3, 1, Valid),
                // the poster model's first layer on one 350×350 poster
                (1, 3, 350, 350, 16, 3, 1, Valid),
            ]
            .into_iter()
            .map(|(n, cin, h, w, cout, k, s, pad)| {
                conv_case(&mut rng, [n, cin, h, w], [cout, cin, k, k], s, pad)
            })
            .collect()
        }
        "batchnorm" => [
            vec![1, 3, 5, 5], // batch 1: statistics over one poster's pixels
            vec![4, 7],       // after a dense layer: per feature
            vec![2, 3, 7, 9],
            vec![3, 16, 20, 20],
            vec![2, 2, 70, 70],    // 9,800 values per channel: 3 chunks merged
            vec![2, 1, 9, 9],      // one channel
            vec![1, 16, 348, 348], // the first block's batch norm on one 350×350 poster
        ]
        .into_iter()
        .map(|s| (s, ops::BnInput::AsIs))
        // the conv's or dense layer's relu fused in: batchnorm(relu(z)), gradient of z
        .chain(
            [vec![4, 7], vec![2, 3, 7, 9], vec![2, 2, 70, 70]]
                .into_iter()
                .map(|s| (s, ops::BnInput::Relu)),
        )
        .map(|(s, input)| batchnorm_case(&mut rng, s, input))
        .collect(),
        "maxpool" => [
            // (input, pool, stride)
            ([1, 1, 4, 4], (2, 2), (2, 2)),
            ([2, 3, 7, 9], (2, 2), (2, 2)), // odd edges dropped, as 348→174…
            ([1, 2, 7, 7], (3, 3), (2, 2)), // overlapping windows: kernel > stride
            ([1, 2, 9, 9], (2, 2), (3, 3)), // gaps: kernel < stride
            ([2, 3, 7, 8], (3, 2), (1, 2)), // non-square
            ([2, 16, 40, 40], (2, 2), (2, 2)),
            ([1, 16, 348, 348], (2, 2), (2, 2)), // the first block's pooling, one poster
        ]
        .into_iter()
        .map(|(x, pool, stride)| maxpool_case(&mut rng, x, ops::MaxPoolConfig { pool, stride }))
        .collect(),
        "dropout" => [
            (vec![1, 1], 0.3),
            (vec![3, 37], 0.5),
            (vec![64, 1000], 0.3),
            (vec![1, 16, 174, 174], 0.3), // the first block's dropout, one poster
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (s, rate))| {
            let config = ops::DropoutConfig {
                rate,
                seed: 17 + i as u32,
                step: 3,
            };
            let n = s.iter().product();
            Case {
                op: "dropout",
                shape: format!("{} p={rate}", shape_str(&s)),
                inputs: vec![Input {
                    name: "x",
                    shape: s,
                    data: rng.vec_f32(n, -1.0, 1.0),
                    grad: true,
                }],
                gpu: Box::new(move |tape, v| ops::dropout(tape, &v[0], config)),
                cpu_forward: Box::new(move |x| ops::dropout::cpu::dropout_forward(&x[0], &config)),
                cpu_backward: Box::new(move |_, dy| {
                    vec![Some(ops::dropout::cpu::dropout_backward(dy, &config))]
                }),
                ref_tol: REF_TOL_ELEMENTWISE,
                fd_eps: FD_EPS,
                fd_tol: FD_TOL,
                reduction: 1,
                forward_reduction: 1,
            }
        })
        .collect(),
        "bnpool" => {
            use ops::BnInput::{AsIs, Relu};
            // (z, input, dropout rate, some channels with γ < 0)
            [
                ([1, 1, 4, 4], AsIs, None, false),
                // odd H and W: a last row and column in no window
                ([2, 3, 7, 9], Relu, Some(0.3), false),
                // γ < 0: each window's maximum of y is its minimum of z
                ([2, 3, 6, 10], AsIs, Some(0.5), true),
                ([2, 4, 12, 13], Relu, None, true),
                ([2, 16, 40, 40], Relu, Some(0.3), false),
                // the first block's tail on one 350×350 poster: 30 chunks per
                // channel, a texture copy of several rows
                ([1, 16, 348, 348], Relu, Some(0.3), false),
            ]
            .into_iter()
            .enumerate()
            .map(|(i, (z, input, rate, negative))| {
                let dropout = rate.map(|rate| ops::DropoutConfig {
                    rate,
                    seed: 41 + i as u32,
                    step: 5,
                });
                bnpool_case(&mut rng, z, input, dropout, negative)
            })
            .collect()
        }
        "bce" => [vec![1, 1], vec![3, 25], vec![1000, 25]]
            .into_iter()
            .map(|s| bce_case(&mut rng, s))
            .collect(),
        _ => vec![],
    }
}

fn shape_str(s: &[usize]) -> String {
    crate::tensor::Shape(s.to_vec()).to_string()
}

fn dense_case(rng: &mut Rng, rows: usize, k: usize, cols: usize) -> Case {
    let limit = (6.0 / (k + cols) as f64).sqrt();
    let x = rng.vec_f32(rows * k, -1.0, 1.0);
    let w = rng.vec_f32(k * cols, -limit, limit);
    let b = rng.vec_f32(cols, -0.5, 0.5);
    Case {
        op: "dense",
        shape: format!("{rows}x{k}->{cols}"),
        inputs: vec![
            Input {
                name: "x",
                shape: vec![rows, k],
                data: x,
                grad: true,
            },
            Input {
                name: "w",
                shape: vec![k, cols],
                data: w,
                grad: true,
            },
            Input {
                name: "b",
                shape: vec![cols],
                data: b,
                grad: true,
            },
        ],
        gpu: Box::new(|tape, v| ops::dense(tape, &v[0], &v[1], &v[2])),
        cpu_forward: Box::new(move |x| {
            ops::dense::cpu::dense_forward(&x[0], &x[1], &x[2], rows, k)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dw, db) = ops::dense::cpu::dense_backward(&x[0], &x[1], dy, rows, k, cols);
            vec![Some(dx), Some(dw), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: k.max(rows).max(cols),
        forward_reduction: k,
    }
}

fn conv_case(
    rng: &mut Rng,
    xs: [usize; 4],
    ws: [usize; 4],
    stride: usize,
    padding: ops::conv2d::Padding,
) -> Case {
    let config = ops::Conv2dConfig { stride, padding };
    let g = ops::conv2d::ConvGeometry::new(&xs, &ws, config).expect("valid case");
    let fan_in = ws[1] * ws[2] * ws[3];
    let limit = (6.0 / (fan_in + ws[0] * ws[2] * ws[3]) as f64).sqrt();
    let x = rng.vec_f32(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec_f32(ws.iter().product(), -limit, limit);
    let b = rng.vec_f32(ws[0], -0.5, 0.5);
    Case {
        op: "conv2d",
        shape: format!(
            "{}x{}x{}x{} k{} s{} {}",
            xs[0],
            xs[1],
            xs[2],
            xs[3],
            ws[2],
            stride,
            match padding {
                ops::conv2d::Padding::Valid => "valid",
                ops::conv2d::Padding::Same => "same",
            }
        ),
        inputs: vec![
            Input {
                name: "x",
                shape: xs.to_vec(),
                data: x,
                grad: true,
            },
            Input {
                name: "w",
                shape: ws.to_vec(),
                data: w,
                grad: true,
            },
            Input {
                name: "b",
                shape: vec![ws[0]],
                data: b,
                grad: true,
            },
        ],
        gpu: Box::new(move |tape, v| ops::conv2d(tape, &v[0], &v[1], &v[2], config)),
        cpu_forward: Box::new(move |x| ops::conv2d::cpu::conv2d_forward(&g, &x[0], &x[1], &x[2])),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dw, db) = ops::conv2d::cpu::conv2d_backward(&g, &x[0], &x[1], dy);
            vec![Some(dx), Some(dw), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: fan_in.max(ws[0] * ws[2] * ws[3]).max(g.n * g.oh * g.ow),
        forward_reduction: fan_in,
    }
}

fn bn_layout(s: &[usize]) -> (usize, usize, usize) {
    (s[0], s[1], s[2..].iter().product())
}

/// The inputs of a batch-norm case (batchnorm, bnpool): the tensor, γ and
/// β, every gradient checked.
fn normalised_inputs(
    name: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
) -> Vec<Input> {
    let c = gamma.len();
    let input = |name, shape, data| Input {
        name,
        shape,
        data,
        grad: true,
    };
    vec![
        input(name, shape, data),
        input("gamma", vec![c], gamma),
        input("beta", vec![c], beta),
    ]
}

fn batchnorm_case(rng: &mut Rng, shape: Vec<usize>, input: ops::BnInput) -> Case {
    use ops::batchnorm::cpu as bn;
    let (n, c, plane) = bn_layout(&shape);
    let count = shape.iter().product();
    let relu = input == ops::BnInput::Relu;
    let x: Vec<f32> = if relu {
        // z: about half of it negative, none within a difference step of the kink
        rng.vec_away_from_zero(count, 0.1, 2.0)
    } else {
        // Each sample gets its own offset, so the chunks of a channel have
        // different means and a wrong merge of chunk statistics shows.
        let per_sample = c * plane;
        rng.vec_f32(count, -1.0, 1.5)
            .iter()
            .enumerate()
            .map(|(i, v)| v + 0.75 * (i / per_sample) as f32)
            .collect()
    };
    let gamma = rng.vec_f32(c, 0.5, 1.5);
    let beta = rng.vec_f32(c, -0.5, 0.5);
    let config = ops::BatchNormConfig {
        input,
        ..Default::default()
    };
    let eps = config.epsilon as f64;
    // the values the batch norm normalises
    let seen = move |z: &[f64]| if relu { bn::relu_input(z) } else { z.to_vec() };
    Case {
        op: "batchnorm",
        shape: format!(
            "{} train{}",
            shape_str(&shape),
            if relu { " relu" } else { "" }
        ),
        inputs: normalised_inputs("x", shape.clone(), x, gamma, beta),
        gpu: Box::new(move |tape, v| {
            let state = ops::BatchNormState::new(tape.gpu(), c)?;
            ops::batch_norm(tape, &v[0], &v[1], &v[2], &state, config)
        }),
        cpu_forward: Box::new(move |x| {
            let v = seen(&x[0]);
            let (mean, var) = bn::batch_stats(&v, n, c, plane);
            bn::forward_with(&v, &x[1], &x[2], &mean, &var, eps, c, plane)
        }),
        cpu_backward: Box::new(move |x, dy| {
            let (dx, dg, db) = bn::backward_training(&seen(&x[0]), &x[1], dy, eps, n, c, plane);
            let dx = if relu {
                bn::relu_input_backward(&x[0], &dx)
            } else {
                dx
            };
            vec![Some(dx), Some(dg), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n * plane,
        forward_reduction: n * plane,
    }
}

/// Batchnorm's state and inference mode: one training forward must update the
/// moving statistics as the reference does; inference must then normalise
/// with them, and its backward (dx = γ·dy/√(var + ε), dγ, dβ) must match.
pub fn check_batchnorm_inference(gpu: &Gpu, seed: u64) -> Result<Vec<Row>> {
    let mut rng = Rng::new(seed ^ 0xB7);
    let mut rows = Vec::new();
    use ops::BnInput::{AsIs, Relu};
    for (shape, input) in [
        (vec![2usize, 3, 7, 9], AsIs),
        (vec![32, 128], AsIs),
        (vec![2, 3, 7, 9], Relu),
    ] {
        let config = ops::BatchNormConfig {
            input,
            ..Default::default()
        };
        let eps = config.epsilon as f64;
        let (n, c, plane) = bn_layout(&shape);
        let count: usize = shape.iter().product();
        let x = match input {
            AsIs => rng.vec_f32(count, -1.0, 2.0),
            Relu => rng.vec_away_from_zero(count, 0.1, 2.0),
        };
        let gamma = rng.vec_f32(c, 0.5, 1.5);
        let beta = rng.vec_f32(c, -0.5, 0.5);
        let dy = rng.vec_f32(count, -1.0, 1.0);
        let (z64, g64, b64, dy64) = (to64(&x), to64(&gamma), to64(&beta), to64(&dy));
        // the values the batch norm sees
        let x64 = match input {
            AsIs => z64.clone(),
            Relu => ops::batchnorm::cpu::relu_input(&z64),
        };
        let xt = Tensor::from_slice(gpu, shape.clone(), &x)?;
        let gt = Tensor::from_slice(gpu, [c], &gamma)?;
        let bt = Tensor::from_slice(gpu, [c], &beta)?;
        let state = ops::BatchNormState::new(gpu, c)?;
        ops::batchnorm::batchnorm_statistics(gpu, &xt, &state, config, Mode::Training)?;
        let (_, mm, mv) = ops::batchnorm::cpu::forward_training(
            &x64,
            &g64,
            &b64,
            (&vec![0.0; c], &vec![1.0; c]),
            config,
            n,
            c,
            plane,
        );
        let stats =
            ops::batchnorm::batchnorm_statistics(gpu, &xt, &state, config, Mode::Inference)?;
        let y = ops::batchnorm::batchnorm_forward(gpu, &xt, &gt, &bt, &stats, input)?;
        let y_ref = ops::batchnorm::cpu::forward_with(&x64, &g64, &b64, &mm, &mv, eps, c, plane);
        let dyt = Tensor::from_slice(gpu, shape.clone(), &dy)?;
        let (dx, dg, db) = (
            Tensor::zeros(gpu, shape.clone(), "dx")?,
            Tensor::zeros(gpu, [c], "dgamma")?,
            Tensor::zeros(gpu, [c], "dbeta")?,
        );
        ops::batchnorm::batchnorm_backward(
            gpu,
            &xt,
            &dyt,
            &gt,
            &stats,
            Mode::Inference,
            input,
            Some(&dx),
            Some(&dg),
            Some(&db),
        )?;
        let mut dx_ref = vec![0.0; count];
        let (mut dg_ref, mut db_ref) = (vec![0.0; c], vec![0.0; c]);
        for i in 0..count {
            let ch = (i / plane) % c;
            let invstd = 1.0 / (mv[ch] + eps).sqrt();
            dx_ref[i] = g64[ch] * invstd * dy64[i];
            dg_ref[ch] += dy64[i] * (x64[i] - mm[ch]) * invstd;
            db_ref[ch] += dy64[i];
        }
        if input == Relu {
            dx_ref = ops::batchnorm::cpu::relu_input_backward(&z64, &dx_ref);
        }
        let tol = match gpu.precision() {
            Precision::F32 => Tolerance {
                atol: 1e-5,
                rtol: 1e-4,
            },
            Precision::F64 => REF_TOL_F64,
        };
        for (check, t, want) in [
            (
                "moving mean after 1 step vs f64 ref",
                &state.moving_mean,
                &mm,
            ),
            ("moving var after 1 step vs f64 ref", &state.moving_var, &mv),
            ("forward (inference) vs f64 reference", &y, &y_ref),
            ("dx (inference) vs f64 reference", &dx, &dx_ref),
            ("dgamma (inference) vs f64 reference", &dg, &dg_ref),
            ("dbeta (inference) vs f64 reference", &db, &db_ref),
        ] {
            let got = t.to_vec_f64(gpu)?;
            let label = match input {
                AsIs => format!("{} infer", shape_str(&shape)),
                Relu => format!("{} infer relu", shape_str(&shape)),
            };
            rows.push(Row::new("batchnorm", &label, check, &got, want, tol));
        }
    }
    Ok(rows)
}

fn maxpool_case(rng: &mut Rng, x: [usize; 4], config: ops::MaxPoolConfig) -> Case {
    // No ties, and no finite-difference step may change which element is a
    // window's maximum. Small or overlapping cases: distinct values 0.05
    // apart (a shuffled ramp; ±1e-2 steps never reorder them). Large cases
    // with disjoint windows (probed along unit directions, where a ramp
    // would outgrow f32's resolution): values in [−1, 0] with one element of
    // every window lifted into [0.5, 1] — a margin of 0.5.
    let n: usize = x.iter().product();
    let overlapping = config.stride.0 < config.pool.0 || config.stride.1 < config.pool.1;
    let data: Vec<f32> = if n <= ELEMENTWISE_MAX || overlapping {
        let mut d: Vec<f32> = (0..n)
            .map(|i| (i as f64 * 0.05 - n as f64 * 0.025) as f32)
            .collect();
        rng.shuffle(&mut d);
        d
    } else {
        let mut d = rng.vec_f32(n, -1.0, 0.0);
        let o = ops::maxpool::output_shape(&x, config).expect("valid case");
        for plane in 0..x[0] * x[1] {
            for oy in 0..o[2] {
                for ox in 0..o[3] {
                    let iy = oy * config.stride.0 + rng.below(config.pool.0);
                    let ix = ox * config.stride.1 + rng.below(config.pool.1);
                    d[(plane * x[2] + iy) * x[3] + ix] = rng.range(0.5, 1.0) as f32;
                }
            }
        }
        d
    };
    let dims = x.to_vec();
    Case {
        op: "maxpool",
        shape: format!(
            "{} k{}x{} s{}x{}",
            shape_str(&x),
            config.pool.0,
            config.pool.1,
            config.stride.0,
            config.stride.1
        ),
        inputs: vec![Input {
            name: "x",
            shape: x.to_vec(),
            data,
            grad: true,
        }],
        gpu: Box::new(move |tape, v| ops::maxpool(tape, &v[0], config)),
        cpu_forward: Box::new({
            let dims = dims.clone();
            move |x| ops::maxpool::cpu::maxpool_forward(&x[0], &dims, config)
        }),
        cpu_backward: Box::new(move |x, dy| {
            vec![Some(ops::maxpool::cpu::maxpool_backward(
                &x[0], &dims, config, dy,
            ))]
        }),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: config.pool.0 * config.pool.1,
        forward_reduction: 1,
    }
}

/// bnpool on z [n, c, h, w]. No finite-difference step may change which
/// element is a window's maximum of y = γ·x̂ + β: one corner of every window
/// (drawn at random) lies in ±[1, 2], with the sign of its channel's γ, the
/// others in ±[0.1, 0.6] (away from relu's kink); elements in no window
/// (a last odd row or column) in ±[0.1, 2]. With `negative`, every other
/// channel has γ < 0, so its windows' maxima of y sit at minima of z.
fn bnpool_case(
    rng: &mut Rng,
    z: [usize; 4],
    input: ops::BnInput,
    dropout: Option<ops::DropoutConfig>,
    negative: bool,
) -> Case {
    use ops::bnpool::cpu;
    let [n, c, h, w] = z;
    let gamma: Vec<f32> = (0..c)
        .map(|ch| {
            let g = rng.range(0.5, 1.5) as f32;
            if negative && ch % 2 == 1 {
                -g
            } else {
                g
            }
        })
        .collect();
    let beta = rng.vec_f32(c, -0.5, 0.5);
    let mut data = rng.vec_away_from_zero(n * c * h * w, 0.1, 2.0);
    for plane in 0..n * c {
        let sign = gamma[plane % c].signum();
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                let winner = rng.below(4);
                for k in 0..4 {
                    let i = (plane * h + 2 * oy + k / 2) * w + 2 * ox + k % 2;
                    data[i] = if k == winner {
                        sign * rng.range(1.0, 2.0) as f32
                    } else {
                        rng.vec_away_from_zero(1, 0.1, 0.6)[0]
                    };
                }
            }
        }
    }
    let config = ops::BnPoolConfig {
        batchnorm: ops::BatchNormConfig {
            input,
            ..Default::default()
        },
        dropout,
    };
    let dims = z.to_vec();
    let plane = h * w;
    Case {
        op: "bnpool",
        shape: format!(
            "{}{}{}{}",
            shape_str(&z),
            if input == ops::BnInput::Relu {
                " relu"
            } else {
                ""
            },
            dropout
                .map(|d| format!(" p={}", d.rate))
                .unwrap_or_default(),
            if negative { " γ<0" } else { "" }
        ),
        inputs: normalised_inputs("z", dims.clone(), data, gamma, beta),
        gpu: Box::new(move |tape, v| {
            let state = ops::BatchNormState::new(tape.gpu(), c)?;
            ops::bnpool(tape, &v[0], &v[1], &v[2], &state, config)
        }),
        cpu_forward: Box::new({
            let dims = dims.clone();
            move |x| cpu::forward(&x[0], &x[1], &x[2], &dims, &config)
        }),
        cpu_backward: Box::new(move |x, dp| {
            let (dz, dg, db) = cpu::backward(&x[0], &x[1], &x[2], &dims, &config, dp);
            vec![Some(dz), Some(dg), Some(db)]
        }),
        ref_tol: REF_TOL_SUMS,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n * plane,
        forward_reduction: n * plane,
    }
}

fn unary_case(
    op: &'static str,
    shape: Vec<usize>,
    x: Vec<f32>,
    gpu: fn(&Tape, &Var) -> Result<Var>,
    fwd: fn(&[f64]) -> Vec<f64>,
    bwd: fn(&[f64], &[f64]) -> Vec<f64>,
) -> Case {
    Case {
        op,
        shape: shape_str(&shape),
        inputs: vec![Input {
            name: "x",
            shape,
            data: x,
            grad: true,
        }],
        gpu: Box::new(move |tape, v| gpu(tape, &v[0])),
        cpu_forward: Box::new(move |x| fwd(&x[0])),
        cpu_backward: Box::new(move |x, dy| vec![Some(bwd(&x[0], dy))]),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: 1,
        forward_reduction: 1,
    }
}

fn bce_case(rng: &mut Rng, shape: Vec<usize>) -> Case {
    let n: usize = shape.iter().product();
    // Predictions keep a margin from 0 and 1; labels are exact 0/1.
    let p = rng.vec_f32(n, 0.2, 0.8);
    let t: Vec<f32> = (0..n).map(|_| (rng.uniform() < 0.3) as u8 as f32).collect();
    Case {
        op: "bce",
        shape: shape_str(&shape),
        inputs: vec![
            Input {
                name: "p",
                shape: shape.clone(),
                data: p,
                grad: true,
            },
            Input {
                name: "t",
                shape,
                data: t,
                grad: false,
            },
        ],
        gpu: Box::new(|tape, v| ops::binary_cross_entropy(tape, &v[0], &v[1])),
        cpu_forward: Box::new(|x| vec![ops::bce::cpu::bce_forward(&x[0], &x[1])]),
        cpu_backward: Box::new(|x, dy| {
            vec![Some(ops::bce::cpu::bce_backward(&x[0], &x[1], dy[0])), None]
        }),
        ref_tol: REF_TOL_ELEMENTWISE,
        fd_eps: FD_EPS,
        fd_tol: FD_TOL,
        reduction: n,
        forward_reduction: n,
    }
}
