//! Running the checks: a case's four comparisons, Adam's update against its
//! reference, batch norm in inference mode.

use super::cases::*;
use super::*;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::ops::{self, AdamConfig};
use crate::rng::Rng;
use crate::shaders::Precision;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

/// Elementwise checks up to this many elements; random directions beyond.
pub(super) const ELEMENTWISE_MAX: usize = 64;
/// Random directions for large tensors (besides the gradient's own).
pub(super) const DIRECTIONS: usize = 3;
/// GPU vs f64 reference for ops without long sums (relu, sigmoid, bce,
/// maxpool, dropout); atol is then raised to each case's rounding floor.
pub(super) const REF_TOL_ELEMENTWISE: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-5,
};
/// GPU vs f64 reference for ops built on long f32 sums (dense, conv2d, batchnorm).
pub(super) const REF_TOL_SUMS: Tolerance = Tolerance {
    atol: 1e-6,
    rtol: 1e-4,
};
/// Step of the f32 central differences (GUIDE §4: 1e-2…1e-3 in f32).
pub(super) const FD_EPS: f64 = 1e-2;
/// f32 central differences; atol is raised to the noise of the difference.
pub(super) const FD_TOL: Tolerance = Tolerance {
    atol: 1e-5,
    rtol: 1e-2,
};
/// f64 kernels (`--dtype f64`) vs the f64 reference: both compute in f64,
/// so only rounding separates them (atol is raised to the case's f64
/// rounding floor, as in f32).
pub(super) const REF_TOL_F64: Tolerance = Tolerance {
    atol: 1e-12,
    rtol: 1e-9,
};
/// f64 kernels vs f64 central differences of themselves: PyTorch
/// gradcheck's own settings (eps 1e-6, atol 1e-5, rtol 1e-3).
pub(super) const F64_FD_EPS: f64 = 1e-6;
pub(super) const F64_FD_TOL: Tolerance = Tolerance {
    atol: 1e-5,
    rtol: 1e-3,
};
/// f64 finite differences of the reference.
pub(super) const REF_FD_EPS: f64 = 1e-6;
pub(super) const REF_FD_TOL: Tolerance = Tolerance {
    atol: 1e-10,
    rtol: 1e-6,
};

pub(super) fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Σ a_i·b_i with Neumaier's compensated summation: a probe v·f(x ± εu)
/// sums up to millions of terms, and in plain f64 their rounding (≈ u·Σ|terms|,
/// divided by 2ε = 2e-6) would reach the 1e-5 of the f64 check by itself.
pub(super) fn dot(a: &[f64], b: &[f64]) -> f64 {
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
pub(super) fn gpu_eval(gpu: &Gpu, case: &Case, values: &[Vec<f64>]) -> Result<Vec<f64>> {
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
pub(super) fn directions(n: usize, grad: &[f64], rng: &mut Rng, probe: Probe) -> Vec<Vec<f64>> {
    let s = 1.0 / (n as f64).sqrt();
    if probe == Probe::Fast {
        return vec![(0..n)
            .map(|_| if rng.uniform() < 0.5 { -s } else { s })
            .collect()];
    }
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
    check_case_with(gpu, case, seed, Probe::Full)
}

/// [`check_case`], probing each gradient as `probe` says.
pub fn check_case_with(gpu: &Gpu, case: &Case, seed: u64, probe: Probe) -> Result<Vec<Row>> {
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
    rows.push(
        row(
            "forward vs f64 reference".into(),
            &y_gpu,
            &y64,
            ref_tol(&y64),
        )
        .at(out.shape().dims()),
    );

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
        rows.push(
            row(
                format!("d{} vs f64 reference", input.name),
                &g_gpu,
                &g_ref,
                ref_tol(&g_ref),
            )
            .at(&input.shape),
        );

        // 3. GPU backward vs central differences of the GPU forward (in the
        //    device's precision);
        // 4. reference backward vs f64 central differences of the reference.
        let dirs = directions(input.data.len(), &g_gpu, &mut rng, probe);
        let probes = Probes::along(gpu, case, &x64, k, &dirs, fd_eps, &v64)?;
        let (ana, ana_ref) = (probes.analytic(&g_gpu), probes.analytic(&g_ref));
        let (num, num_ref) = (probes.numeric, probes.numeric_ref);
        let how = if dirs.len() == input.data.len() && input.data.len() <= ELEMENTWISE_MAX {
            "elementwise"
        } else {
            "directions"
        };
        let fd_tol = device_fd_tolerance(precision, case, case_fd_tol, &v64, &y_gpu, fd_eps);
        // elementwise, direction j is element j of the input
        let at = |r: Row| {
            if how == "elementwise" {
                r.at(&input.shape)
            } else {
                r
            }
        };
        rows.push(at(row(
            format!("d{} vs {precision} central diff ({how})", input.name),
            &ana,
            &num,
            fd_tol,
        )));
        // The f64 reference computes each output exactly enough; its noise is
        // the rounding of the probed dot product over all outputs, four times
        // the independent-error model: a batch norm's outputs share their
        // channel's statistics, so their rounding errors are correlated and
        // reach 2.5× the model (`[2, 2, 70, 70] train relu`, seeds 3 and 7).
        let noise = 4.0 * fd_noise(U64, case.reduction.max(y64.len()), &v64, &y64, REF_FD_EPS);
        let ref_fd_tol = Tolerance {
            atol: REF_FD_TOL.atol.max(noise),
            rtol: REF_FD_TOL.rtol,
        };
        rows.push(at(row(
            format!("d{} ref vs f64 central diff", input.name),
            &ana_ref,
            &num_ref,
            ref_fd_tol,
        )));
    }
    Ok(rows)
}

/// The tolerance of the device's central differences: in f32 atol is
/// raised to the rounding noise of the differenced forward; in f64 it is
/// PyTorch's, never raised.
fn device_fd_tolerance(
    precision: Precision,
    case: &Case,
    tol: Tolerance,
    v: &[f64],
    y: &[f64],
    eps: f64,
) -> Tolerance {
    match precision {
        Precision::F32 => Tolerance {
            atol: tol.atol.max(fd_noise(
                unit_roundoff(precision),
                case.forward_reduction,
                v,
                y,
                eps,
            )),
            rtol: tol.rtol,
        },
        Precision::F64 => tol,
    }
}

/// Central differences of `v·f(x)` along each direction `u` of input `k`:
/// of the GPU forward (in the device's precision, step `eps`) and of the f64
/// reference forward (step [`REF_FD_EPS`]).
struct Probes<'d> {
    dirs: &'d [Vec<f64>],
    numeric: Vec<f64>,
    numeric_ref: Vec<f64>,
}

impl<'d> Probes<'d> {
    fn along(
        gpu: &Gpu,
        case: &Case,
        x64: &[Vec<f64>],
        k: usize,
        dirs: &'d [Vec<f64>],
        eps: f64,
        v64: &[f64],
    ) -> Result<Probes<'d>> {
        let step = |eps: f64, u: &[f64], sign: f64| {
            let mut x = x64.to_vec();
            for (j, &uj) in u.iter().enumerate() {
                x[k][j] += sign * eps * uj;
            }
            x
        };
        let (mut numeric, mut numeric_ref) = (vec![], vec![]);
        for u in dirs {
            let fp = dot(&gpu_eval(gpu, case, &step(eps, u, 1.0))?, v64);
            let fm = dot(&gpu_eval(gpu, case, &step(eps, u, -1.0))?, v64);
            numeric.push((fp - fm) / (2.0 * eps));
            let fp = dot(&(case.cpu_forward)(&step(REF_FD_EPS, u, 1.0)), v64);
            let fm = dot(&(case.cpu_forward)(&step(REF_FD_EPS, u, -1.0)), v64);
            numeric_ref.push((fp - fm) / (2.0 * REF_FD_EPS));
        }
        Ok(Probes {
            dirs,
            numeric,
            numeric_ref,
        })
    }

    /// The gradient `g` along each direction.
    fn analytic(&self, g: &[f64]) -> Vec<f64> {
        self.dirs.iter().map(|u| dot(g, u)).collect()
    }
}

/// A case of `op` (maxpool or bnpool) whose windows hold their maximum
/// more than once: values from four levels. The cases of the suite avoid
/// ties (a finite-difference step across one meets a kink), so only here
/// does the rule that a tie goes to the window's first maximum in scan
/// order — the forward's, the reference's and the backward's — meet a
/// check: against the f64 reference, with no central differences.
pub(super) fn pool_ties_case(op: &str, seed: u64) -> Option<Case> {
    let mut rng = Rng::new(seed ^ 0x7135);
    let (mut case, levels) = match op {
        // overlapping, padded windows (ResNet's pool), odd sides
        "maxpool" => (
            maxpool_case(&mut rng, [2, 3, 7, 9], ops::MaxPoolConfig::RESNET),
            [-0.5f32, 0.0, 0.5, 1.0],
        ),
        // γ < 0 in every other channel: ties at the minima of z too
        "bnpool" => (
            bnpool_case(&mut rng, [2, 4, 6, 10], ops::BnInput::AsIs, None, true),
            [0.25f32, 0.5, 0.75, 1.0],
        ),
        _ => return None,
    };
    let n = case.inputs[0].data.len();
    case.inputs[0].data = (0..n).map(|_| levels[rng.below(levels.len())]).collect();
    case.shape.push_str(" ties");
    Some(case)
}

/// [`pool_ties_case`]'s rows against the f64 reference.
pub fn check_pool_ties(gpu: &Gpu, op: &str, seed: u64) -> Result<Vec<Row>> {
    let Some(case) = pool_ties_case(op, seed) else {
        return Ok(vec![]);
    };
    Ok(check_case_with(gpu, &case, seed, Probe::Fast)?
        .into_iter()
        .filter(|r| r.check.ends_with("vs f64 reference"))
        .collect())
}

/// Predictions in [`check_bce_saturated`].
const BCE_CLIPPED: usize = 64;

/// The shape [`check_bce_saturated`]'s rows carry (and `--list` prints).
pub(super) fn bce_clipped_shape() -> String {
    format!("[{BCE_CLIPPED}] clipped")
}

/// BCE where its clipping acts: predictions at and inside ε of 0 and 1
/// (and some in between), against the f64 reference, forward and backward
/// (zero gradient where the clip is active). Central differences cannot
/// check these — a step of ε crosses the clip — so the rows compare with
/// the reference only.
pub fn check_bce_saturated(gpu: &Gpu, seed: u64) -> Result<Vec<Row>> {
    let mut rng = Rng::new(seed ^ 0xBCE5);
    let eps = ops::BCE_EPSILON as f64;
    let edges = [0.0, 1e-12, eps / 2.0, 1.0 - eps / 2.0, 1.0 - 1e-12, 1.0];
    let n = BCE_CLIPPED;
    let p: Vec<f64> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                edges[(i / 2) % edges.len()]
            } else {
                rng.uniform()
            }
        })
        .collect();
    let t: Vec<f64> = (0..n).map(|i| ((i / 3) % 2) as f64).collect();
    // what the device holds (an f32 device rounds 1 − 1e-12 to 1)
    let pt = Tensor::from_slice(gpu, [n], &p)?;
    let tt = Tensor::from_slice(gpu, [n], &t)?;
    let p = pt.to_vec_f64(gpu)?;
    let shape = bce_clipped_shape();
    let loss = ops::bce::bce_forward(gpu, &pt, &tt)?.to_vec_f64(gpu)?;
    // The clip bounds as the device holds them: in f32, 1 − 1e-7 rounds to
    // 1 − 2^-23·… (and log(1 − q) at the bound follows): the reference
    // clips where the kernel does.
    let (lo, hi) = match gpu.precision() {
        Precision::F32 => (ops::BCE_EPSILON as f64, (1.0f32 - ops::BCE_EPSILON) as f64),
        Precision::F64 => (eps, 1.0 - eps),
    };
    let one_minus = |q: f64| match gpu.precision() {
        Precision::F32 => (1.0f32 - q as f32) as f64,
        Precision::F64 => 1.0 - q,
    };
    let forward = -p
        .iter()
        .zip(&t)
        .map(|(&pi, &ti)| {
            let q = pi.clamp(lo, hi);
            ti * q.ln() + (1.0 - ti) * one_minus(q).ln()
        })
        .sum::<f64>()
        / n as f64;
    let want = vec![forward];
    let tol = match gpu.precision() {
        Precision::F32 => Tolerance {
            atol: 1e-5,
            rtol: 1e-5,
        },
        Precision::F64 => REF_TOL_F64,
    };
    let mut rows = vec![Row::new(
        "bce",
        &shape,
        "forward vs f64 reference",
        &loss,
        &want,
        tol,
    )];
    let dloss = Tensor::from_slice(gpu, [1], &[1.0f64])?;
    let dp = Tensor::zeros(gpu, [n], "dp")?;
    ops::bce::bce_backward(gpu, &pt, &tt, &dloss, &dp)?;
    let got = dp.to_vec_f64(gpu)?;
    let want: Vec<f64> = p
        .iter()
        .zip(&t)
        .map(|(&q, &ti)| {
            if (lo..=hi).contains(&q) {
                (q - ti) / (q * one_minus(q)) / n as f64
            } else {
                0.0
            }
        })
        .collect();
    rows.push(Row::new("bce", &shape, "dp vs f64 reference", &got, &want, tol).at(&[n]));
    Ok(rows)
}

/// Adam has no backward: three GPU steps against three f64 reference steps,
/// then (in f32, where the non-finite guard exists) a fourth step whose
/// gradient holds a NaN and must change nothing.
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

/// [`check_batchnorm_inference`]'s cases: (shape, input, settings, the
/// shape as its rows carry it and `--list` prints it).
pub(super) fn batchnorm_inference_cases(
) -> Vec<(Vec<usize>, ops::BnInput, ops::BatchNormConfig, String)> {
    use ops::BnInput::{AsIs, Relu};
    // Keras's settings, and PyTorch's (momentum 0.9, ε 1e-5, the unbiased
    // running variance: `BnParams::unbiased`)
    let keras = ops::BatchNormConfig::default();
    [
        (vec![2usize, 3, 7, 9], AsIs, keras, ""),
        (vec![32, 128], AsIs, keras, ""),
        (vec![2, 3, 7, 9], Relu, keras, ""),
        (
            vec![2, 3, 7, 9],
            AsIs,
            ops::BatchNormConfig::TORCH,
            " torch",
        ),
    ]
    .into_iter()
    .map(|(shape, input, config, settings)| {
        let label = match input {
            AsIs => format!("{} infer{settings}", shape_str(&shape)),
            Relu => format!("{} infer relu{settings}", shape_str(&shape)),
        };
        (
            shape,
            input,
            ops::BatchNormConfig { input, ..config },
            label,
        )
    })
    .collect()
}

/// Batchnorm's state and inference mode: one training forward must update the
/// moving statistics as the reference does; inference must then normalise
/// with them, and its backward (dx = γ·dy/√(var + ε), dγ, dβ) must match.
pub fn check_batchnorm_inference(gpu: &Gpu, seed: u64) -> Result<Vec<Row>> {
    let mut rng = Rng::new(seed ^ 0xB7);
    let mut rows = Vec::new();
    use ops::BnInput::{AsIs, Relu};
    for (shape, input, config, label) in batchnorm_inference_cases() {
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
        let saved = ops::batchnorm::BnSaved {
            x: &xt,
            gamma: &gt,
            stats: &stats,
        };
        let grads = ops::batchnorm::BnGrads {
            dx: Some(&dx),
            dgamma: Some(&dg),
            dbeta: Some(&db),
        };
        ops::batchnorm::batchnorm_backward(gpu, &saved, &dyt, Mode::Inference, input, grads)?;
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
            rows.push(Row::new("batchnorm", &label, check, &got, want, tol));
        }
    }
    Ok(rows)
}
