//! The whole-model gradient check (`postergrad gradcheck --model`): the
//! loss's gradient with respect to every parameter tensor of a model, from
//! one backward pass through the tape, against central differences of the
//! whole model's loss along random directions. Ops pass one by one and a
//! model can still be wrong where they meet (a fusion, a saved tensor read
//! after it was overwritten, a gradient added where it should be written);
//! this check sees the model as training sees it: dropout with fixed masks
//! (one step number), batch norm in training mode (batch statistics).

use super::{Model, ModelKind, ModelOptions};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::gradcheck::{Report, Row, Tolerance};
use crate::rng::Rng;
use crate::shaders::Precision;
use crate::tape::{Mode, Tape};
use crate::tensor::Tensor;

/// Which model, at what size.
#[derive(Clone, Copy, Debug)]
pub struct ModelCheck {
    pub kind: ModelKind,
    pub size: usize,
    pub batch: usize,
    /// Outputs of the head.
    pub labels: usize,
    pub seed: u64,
    /// Random directions per parameter tensor.
    pub directions: usize,
}

/// The dropout step every evaluation uses, so that all see the same masks.
const STEP: u32 = 3;

/// One backward pass, then for every parameter tensor `directions` central
/// differences of the loss; one report row per tensor. In f64 (an f64
/// device) the step is 1e-6 and the tolerance PyTorch gradcheck's; in f32
/// the step is 1e-2 and the tolerance loose, since the loss is a sum of
/// millions of f32 terms.
pub fn check_model(gpu: &Gpu, c: &ModelCheck) -> Result<Report> {
    let model = Model::with_options(
        gpu,
        c.kind,
        c.size,
        c.labels,
        c.seed,
        ModelOptions::default(),
    )?;
    let mut rng = Rng::new(c.seed ^ 0x30DE_1C4E);
    let x = rng.vec_f32(c.batch * 3 * c.size * c.size, 0.0, 1.0);
    let y: Vec<f32> = (0..c.batch * c.labels)
        .map(|_| if rng.uniform() < 0.3 { 1.0 } else { 0.0 })
        .collect();
    let x = Tensor::from_slice(gpu, [c.batch, 3, c.size, c.size], &x)?;
    let y = Tensor::from_slice(gpu, [c.batch, c.labels], &y)?;
    let loss = |backward: bool| -> Result<f64> {
        let tape = Tape::new(gpu, Mode::Training);
        let l = model.loss(
            &tape,
            &tape.constant(x.clone()),
            &tape.constant(y.clone()),
            STEP,
        )?;
        if backward {
            tape.backward(&l)?;
        }
        Ok(l.value.to_vec_f64(gpu)?[0])
    };
    for p in model.params() {
        p.grad.fill(gpu, 0.0)?;
    }
    loss(true)?;
    let precision = gpu.precision();
    let (eps, tol) = match precision {
        Precision::F64 => (
            1e-6,
            Tolerance {
                atol: 1e-5,
                rtol: 1e-3,
            },
        ),
        Precision::F32 => (
            1e-2,
            Tolerance {
                atol: 2e-3,
                rtol: 5e-2,
            },
        ),
    };
    let shape = format!("{} {}×{} b{}", c.kind, c.size, c.size, c.batch);
    let mut rows = Vec::new();
    for p in model.params() {
        let g = p.grad.to_vec_f64(gpu)?;
        let p0 = p.value.to_vec_f64(gpu)?;
        let s = 1.0 / (p0.len() as f64).sqrt();
        let (mut analytic, mut numeric) = (Vec::new(), Vec::new());
        for _ in 0..c.directions {
            let u: Vec<f64> = (0..p0.len())
                .map(|_| if rng.uniform() < 0.5 { -s } else { s })
                .collect();
            analytic.push(g.iter().zip(&u).map(|(a, b)| a * b).sum::<f64>());
            let at = |sign: f64| -> Vec<f64> {
                p0.iter().zip(&u).map(|(v, d)| v + sign * eps * d).collect()
            };
            p.value.write(gpu, &at(1.0))?;
            let plus = loss(false)?;
            p.value.write(gpu, &at(-1.0))?;
            let minus = loss(false)?;
            numeric.push((plus - minus) / (2.0 * eps));
        }
        p.value.write(gpu, &p0)?;
        rows.push(Row::new(
            "model",
            &shape,
            &format!(
                "d{} along {} random directions vs {precision} central diff",
                p.name, c.directions
            ),
            &analytic,
            &numeric,
            tol,
        ));
    }
    Ok(Report {
        rows,
        seed: c.seed,
        precision,
        fast: false,
        command: Some(format!(
            "postergrad gradcheck --model {} --size {} --batch {} --seed {}",
            c.kind, c.size, c.batch, c.seed
        )),
    })
}
