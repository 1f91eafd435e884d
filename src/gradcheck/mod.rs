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
//!
//! `cases.rs` holds each op's shapes and references; `check.rs` runs them;
//! `report.rs` prints them (table, details, JSON, JUnit); `mutants.rs` makes
//! the mutants that `--mutants` runs.

mod builders;
mod cases;
mod check;
pub mod mutants;
mod report;

pub use cases::cases;
pub use check::{
    check_adam, check_batchnorm_inference, check_bce_saturated, check_case, check_pool_ties,
};
pub use report::{Report, Shown};

use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::shaders::Precision;
use crate::tape::{Tape, Var};

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
    /// The shape the compared values have (an output or an input), so that
    /// an index reads as a coordinate `[n, c, y, x]`; None where the values
    /// are one per probed direction.
    pub coords: Option<Vec<usize>>,
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
            coords: None,
        }
    }

    /// The same row with its values laid out in `shape`.
    pub fn at(mut self, shape: &[usize]) -> Row {
        self.coords = Some(shape.to_vec());
        self
    }

    /// What the check compares against: the f64 CPU `reference`, `central
    /// differences`, or a `guard` (a step that must change nothing).
    pub fn kind(&self) -> &'static str {
        if self.check.contains("central diff") {
            "central differences"
        } else if self.check.contains("NaN-guarded") || self.check.contains("guard") {
            "guard"
        } else {
            "reference"
        }
    }

    /// Element `i` as a coordinate in [`Row::coords`] (`[0, 3, 5, 7]`), or
    /// `direction i` where the values are one per probed direction.
    pub fn position(&self, i: usize) -> String {
        match &self.coords {
            Some(shape) if shape.iter().product::<usize>() > i => {
                let mut rest = i;
                let mut c = vec![0; shape.len()];
                for (d, &n) in shape.iter().enumerate().rev() {
                    c[d] = rest % n.max(1);
                    rest /= n.max(1);
                }
                format!("{c:?}")
            }
            Some(_) | None if self.check.contains("directions") => format!("direction {i}"),
            _ => format!("element {i}"),
        }
    }

    /// The worst element in words: where, tested and trusted values, the
    /// tolerance that applied there and which of its terms dominated.
    pub fn worst_in_words(&self) -> Option<String> {
        let (i, a, b) = self.worst?;
        let allowed = self.tol.atol + self.tol.rtol * b.abs();
        let which = if self.tol.atol >= self.tol.rtol * b.abs() {
            "absolute"
        } else {
            "relative"
        };
        Some(format!(
            "worst at {}: tested {a:.8e}, trusted {b:.8e}, |difference| {:.3e} {} allowed {allowed:.3e} \
             (atol {:.0e} + rtol {:.0e}·|trusted|; the {which} term dominates); {} check",
            self.position(i),
            (a - b).abs(),
            if (a - b).abs() <= allowed { "≤" } else { ">" },
            self.tol.atol,
            self.tol.rtol,
            self.kind()
        ))
    }

    /// The row as one JSON object (`gradcheck --json`).
    pub fn to_json(&self) -> serde_json::Value {
        let worst = self.worst.map(|(i, a, b)| {
            serde_json::json!({
                "index": i,
                "position": self.position(i),
                "tested": a,
                "trusted": b,
            })
        });
        serde_json::json!({
            "op": self.op,
            "shape": self.shape,
            "check": self.check,
            "kind": self.kind(),
            "max_abs": self.max_abs,
            "max_rel": self.max_rel,
            "atol": self.tol.atol,
            "rtol": self.tol.rtol,
            "passed": self.passed,
            "worst": worst,
        })
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
    /// Only the cases of this shape (as the report prints it), to re-run
    /// one failing case.
    pub case: Option<String>,
    /// One random direction per gradient for the central differences
    /// (PyTorch's fast mode), instead of every element of small tensors and
    /// four directions of large ones.
    pub fast: bool,
}

/// How the central differences probe a gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Every element of inputs up to 64 elements, else the gradient's own
    /// direction and three random ones.
    Full,
    /// One random direction (PyTorch's fast mode).
    Fast,
}

impl Options {
    /// The probing `fast` asks for.
    pub fn probe(&self) -> Probe {
        if self.fast {
            Probe::Fast
        } else {
            Probe::Full
        }
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
                        what: format!("gradcheck: op `{n}`"),
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
    let mut report = Report {
        seed: options.seed,
        precision: gpu.precision(),
        fast: options.fast,
        ..Default::default()
    };
    let wanted = |shape: &str| options.case.as_deref().is_none_or(|c| c == shape);
    for op in selected {
        // the rows an op has beside its cases (Adam has only these)
        let own = match op {
            "adam" => check_adam(gpu, options.seed)?,
            "bce" => check_bce_saturated(gpu, options.seed)?,
            "maxpool" | "bnpool" => check_pool_ties(gpu, op, options.seed)?,
            "batchnorm" => check_batchnorm_inference(gpu, options.seed)?,
            _ => vec![],
        };
        report
            .rows
            .extend(own.into_iter().filter(|r| wanted(&r.shape)));
        for case in cases(op, options.seed) {
            if !wanted(&case.shape) {
                continue;
            }
            let rows = check::check_case_with(gpu, &case, options.seed, options.probe())?;
            report.rows.extend(rows);
        }
        report
            .rows
            .extend(small_limits_pass(gpu, op, options, &wanted)?);
        if op == "conv2d" {
            for set in crate::ops::conv2d::variant_sets(gpu) {
                report
                    .rows
                    .extend(with_variants(gpu, set, options, &wanted)?);
            }
        }
    }
    Ok(report)
}

/// The parameter counts `check_adam` updates.
/// (12,288: four per invocation, 12 workgroups, exactly 4 folded rows of 3 in the small-limits
/// pass, no slack in the last row.)
pub(crate) const ADAM_SIZES: [usize; 4] = [1, 1000, 12_288, 40_000];

/// The small-limits pass takes the op's cases up to this many elements.
const SMALL_MAX_ELEMENTS: usize = 100_000;
/// What the small-limits pass adds to a case's shape in the report.
pub const SMALL_LIMITS: &str = " (small limits)";
/// What the split-batch pass adds to a case's shape in the report.
pub const SPLIT_BATCH: &str = " (split batch)";

/// The passes that repeat the small cases under other limits: each with
/// what it adds to a case's shape in the report.
type Limits = fn(crate::gpu::Tuning) -> crate::gpu::Tuning;
const LIMIT_PASSES: [(Limits, &str); 2] =
    [(small_limits, SMALL_LIMITS), (split_batch, SPLIT_BATCH)];

/// The limits of the small-limits pass: what a large tensor meets on an
/// adapter, met by small ones.
pub fn small_limits(t: crate::gpu::Tuning) -> crate::gpu::Tuning {
    crate::gpu::Tuning {
        // 1-D grids fold into y past 3 workgroups (an adapter folds past
        // 65,535), so the folded index `gid.x + gid.y · num_workgroups.x ·
        // 256` and the partly idle last row run
        fold_groups: Some(3),
        // conv2d's split weight and bias sums in chunks of 64 output pixels
        // and bnpool's in chunks of 4 quads: many chunks, a folded grid
        weight_chunk: Some(64),
        bnpool_chunk: Some(4),
        // texture copies in 16-texel rows and 256-texel layers: a few
        // thousand elements span rows and layers
        texture_row_bits: Some(4),
        // fresh tensors start as NaN: an element an index skips shows
        poison: true,
        ..t
    }
}

/// The limits of the split-batch pass: storage bindings of at most 1 KiB
/// at 256-byte offsets, so that ops split their batches into windows of a
/// sample or a few hundred elements whose first elements (`x_base`,
/// `y_base`) are non-zero and differ between tensors, as on a batch larger
/// than a binding; and every gradient added into a zeroed buffer
/// (`Tuning::accumulate_gradients`). (Not in [`small_limits`]: windows
/// this small would never fill the folded grids that pass is for.)
pub fn split_batch(t: crate::gpu::Tuning) -> crate::gpu::Tuning {
    crate::gpu::Tuning {
        max_binding_bytes: Some(1024),
        // and every gradient added into a zeroed buffer: the adding paths
        // of the ops that write a fresh gradient where they can
        accumulate_gradients: true,
        poison: true,
        ..t
    }
}

/// The small-limits and split-batch passes: the op's cases of up to
/// [`SMALL_MAX_ELEMENTS`] again under [`small_limits`] and under
/// [`split_batch`], so that the paths an adapter takes only for large
/// tensors — folded grids, many reduction chunks, texture copies past one
/// row and one layer, batches split across bindings — run on tensors this
/// small.
fn small_limits_pass(
    gpu: &Gpu,
    op: &str,
    options: &Options,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for (limits, label) in LIMIT_PASSES {
        let rows = with_tuning(gpu, limits, || {
            if op == "adam" {
                check_adam(gpu, options.seed)
            } else {
                small_cases(gpu, op, SMALL_MAX_ELEMENTS, options)
            }
        })?;
        out.extend(labelled(rows, label, wanted));
    }
    Ok(out)
}

/// conv2d's cases of up to [`VARIANT_MAX_ELEMENTS`] with the variants of
/// `set` preferred wherever they fit (`Tuning::prefer`): the kernels other
/// adapters pick, checked here too. Rows carry the set after the shape.
fn with_variants(
    gpu: &Gpu,
    set: &'static [&'static str],
    options: &Options,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<Row>> {
    let prefer = |t: crate::gpu::Tuning| crate::gpu::Tuning {
        prefer: set,
        poison: true,
        ..t
    };
    let rows = with_tuning(gpu, prefer, || {
        small_cases(gpu, "conv2d", VARIANT_MAX_ELEMENTS, options)
    })?;
    Ok(labelled(rows, &variant_label(set), wanted))
}

/// Runs `f` with the device's tuning changed by `change`, then restores it
/// (whether `f` failed or not).
fn with_tuning<R>(
    gpu: &Gpu,
    change: impl FnOnce(crate::gpu::Tuning) -> crate::gpu::Tuning,
    f: impl FnOnce() -> Result<R>,
) -> Result<R> {
    let before = gpu.tuning();
    gpu.set_tuning(change(before))?;
    let out = f();
    gpu.set_tuning(before)?;
    out
}

/// The rows of the op's cases whose first input has at most `max` elements.
fn small_cases(gpu: &Gpu, op: &str, max: usize, options: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for case in cases(op, options.seed) {
        if case.inputs[0].data.len() <= max {
            rows.extend(check::check_case_with(
                gpu,
                &case,
                options.seed,
                options.probe(),
            )?);
        }
    }
    Ok(rows)
}

/// `rows` with `label` after their shape, those `wanted` only.
fn labelled(rows: Vec<Row>, label: &str, wanted: &dyn Fn(&str) -> bool) -> Vec<Row> {
    rows.into_iter()
        .map(|mut r| {
            r.shape.push_str(label);
            r
        })
        .filter(|r| wanted(&r.shape))
        .collect()
}

/// conv2d's variant passes take the cases up to this many input elements.
const VARIANT_MAX_ELEMENTS: usize = 100_000;

/// What a variant pass adds to a case's shape in the report.
pub fn variant_label(set: &[&str]) -> String {
    format!(" (variants {})", set.join(" + "))
}

/// Every case the suite would check for `ops` (all when None), as (op,
/// shape), without running anything: `postergrad gradcheck --list`.
pub fn list(ops: Option<&[String]>, seed: u64) -> Vec<(&'static str, String)> {
    crate::ops::registry::gradcheck_ops()
        .into_iter()
        .filter(|op| ops.is_none_or(|names| names.iter().any(|n| n == op)))
        .flat_map(|op| -> Vec<(&'static str, String)> {
            if op == "adam" {
                let plain = ADAM_SIZES.iter().map(|n| ("adam", format!("[{n}]")));
                let limited = LIMIT_PASSES.into_iter().flat_map(|(_, label)| {
                    ADAM_SIZES
                        .iter()
                        .map(move |n| ("adam", format!("[{n}]{label}")))
                });
                plain.chain(limited).collect()
            } else {
                let all = cases(op, seed);
                let variants: Vec<String> = if op == "conv2d" {
                    // every set any adapter could run (the suite runs those this one has)
                    let sets = crate::ops::conv2d::VARIANT_SETS.iter().map(|(set, _)| *set);
                    sets.flat_map(|set| {
                        all.iter()
                            .filter(|c| c.inputs[0].data.len() <= VARIANT_MAX_ELEMENTS)
                            .map(move |c| format!("{}{}", c.shape, variant_label(set)))
                    })
                    .collect()
                } else {
                    vec![]
                };
                let small: Vec<String> = LIMIT_PASSES
                    .into_iter()
                    .flat_map(|(_, label)| {
                        all.iter()
                            .filter(|c| c.inputs[0].data.len() <= SMALL_MAX_ELEMENTS)
                            .map(move |c| format!("{}{label}", c.shape))
                    })
                    .collect();
                let clipped = (op == "bce").then(check::bce_clipped_shape);
                let ties = check::pool_ties_case(op, seed).map(|c| c.shape);
                let inference: Vec<String> = if op == "batchnorm" {
                    check::batchnorm_inference_cases()
                        .into_iter()
                        .map(|c| c.3)
                        .collect()
                } else {
                    vec![]
                };
                all.into_iter()
                    .map(|c| c.shape)
                    .chain(clipped)
                    .chain(ties)
                    .chain(inference)
                    .chain(small)
                    .chain(variants)
                    .map(|s| (op, s))
                    .collect()
            }
        })
        .collect()
}
