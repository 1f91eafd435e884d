//! One training step of the poster model on random data, timed:
//!
//!     cargo run --release --example poster_step -- [size] [batch] [steps]
//!
//! (defaults 350, 32 and 2: the tutorial's configuration.)

use postergrad::nn::{Model, ModelKind};
use postergrad::ops::{Adam, AdamConfig};
use postergrad::rng::Rng;
use postergrad::{Gpu, Mode, Tape, Tensor};
use std::time::Instant;

fn main() -> postergrad::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let size = args.first().copied().unwrap_or(350);
    let batch = args.get(1).copied().unwrap_or(32);
    let steps = args.get(2).copied().unwrap_or(2) as u32;
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.adapter());
    let model = Model::new(&gpu, ModelKind::Poster, size, 25, 0)?;
    let (trainable, moving) = model.param_counts();
    println!(
        "poster model at {size}×{size}: {trainable} trainable + {moving} non-trainable parameters"
    );
    let params = model.params();
    let mut adam = Adam::new(&gpu, &params, AdamConfig::default())?;
    let mut rng = Rng::new(1);
    let x = Tensor::from_slice(
        &gpu,
        [batch, 3, size, size],
        &rng.vec_f32(batch * 3 * size * size, 0.0, 1.0),
    )?;
    let y: Vec<f32> = (0..batch * 25)
        .map(|_| (rng.uniform() < 0.1) as u8 as f32)
        .collect();
    let y = Tensor::from_slice(&gpu, [batch, 25], &y)?;
    for step in 0..steps {
        let t = Instant::now();
        let tape = Tape::new(&gpu, Mode::Training);
        let loss = model.loss(
            &tape,
            &tape.constant(x.clone()),
            &tape.constant(y.clone()),
            step,
        )?;
        tape.backward(&loss)?;
        adam.step(&gpu, &params)?;
        let l = loss.value.to_vec(&gpu)?[0];
        let s = t.elapsed().as_secs_f64();
        println!(
            "step {step}: loss {l:.4}, {:.2} s, {:.0} ms/sample, {} GPU buffers created so far",
            s,
            s * 1e3 / batch as f64,
            gpu.stats().buffers_created
        );
    }
    Ok(())
}
