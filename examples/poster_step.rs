//! One training step of the poster model on random data, timed:
//!
//!     cargo run --release --example poster_step -- [size] [batch] [steps]
//!
//! (defaults 350, 32 and 2: the tutorial's configuration.)

use postergrad::nn::ModelKind;
use postergrad::profile::RandomStep;
use postergrad::Gpu;
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
    let mut run = RandomStep::new(&gpu, ModelKind::Poster, size, batch, 25)?;
    let (trainable, moving) = run.model.param_counts();
    println!(
        "poster model at {size}×{size}: {trainable} trainable + {moving} non-trainable parameters"
    );
    for step in 0..steps {
        let t = Instant::now();
        let l = run.step(step)?;
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
