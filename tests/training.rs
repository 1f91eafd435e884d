//! A training step allocates nothing after the first and submits once; an
//! MLP learns a synthetic multi-label problem far below the label prior.

use postergrad::data::Dataset;
use postergrad::nn::Mlp;
use postergrad::ops::{Adam, AdamConfig};
use postergrad::train::{train_mlp_synthetic, MlpTrainConfig};
use postergrad::{Gpu, Mode, Tape, Tensor};

#[test]
fn steady_state_steps_allocate_no_buffers_and_submit_once() {
    let gpu = Gpu::new().unwrap();
    let data = Dataset::synthetic_multilabel(256, 32, 10, 1);
    let model = Mlp::new(&gpu, &[32, 64, 64, 10], 1).unwrap();
    let params = model.params();
    let mut adam = Adam::new(&gpu, &params, AdamConfig::default()).unwrap();
    let mut snapshots = vec![];
    for step in 0..6 {
        let idx: Vec<usize> = (step * 32..step * 32 + 32).collect();
        let (x, y) = data.gather(&idx);
        let tape = Tape::new(&gpu, Mode::Training);
        let xv = tape.constant(Tensor::from_slice(&gpu, [32, 32], &x).unwrap());
        let yv = tape.constant(Tensor::from_slice(&gpu, [32, 10], &y).unwrap());
        let loss = model.loss(&tape, &xv, &yv).unwrap();
        tape.backward(&loss).unwrap();
        adam.step(&gpu, &params).unwrap();
        snapshots.push(gpu.stats());
    }
    gpu.sync().unwrap();
    let first = snapshots[0];
    for s in &snapshots[1..] {
        assert_eq!(
            s.buffers_created, first.buffers_created,
            "a later step created buffers: {snapshots:?}"
        );
    }
    // Nothing is read back, so each step is exactly one submission (made when
    // the next step uploads its batch) and the same number of dispatches.
    for w in snapshots.windows(2).skip(1) {
        assert_eq!(w[1].submissions - w[0].submissions, 1, "{snapshots:?}");
        assert_eq!(
            w[1].dispatches - w[0].dispatches,
            snapshots[1].dispatches - snapshots[0].dispatches
        );
    }
}

#[test]
fn mlp_learns_far_below_the_label_prior() {
    let gpu = Gpu::new().unwrap();
    let config = MlpTrainConfig {
        epochs: 12,
        ..Default::default()
    };
    let mut lines = vec![];
    let s = train_mlp_synthetic(&gpu, &config, |l| lines.push(l)).unwrap();
    let last = *s.val_loss.last().unwrap();
    assert!(
        s.val_prior_bce > 0.45,
        "the problem is not trivial: prior {}",
        s.val_prior_bce
    );
    assert!(
        last < 0.5 * s.val_prior_bce,
        "val loss {last} vs prior {}\n{}",
        s.val_prior_bce,
        lines.join("\n")
    );
    assert!(
        s.train_loss.windows(2).all(|w| w[1] < w[0] + 0.01),
        "{:?}",
        s.train_loss
    );
    assert_eq!(lines.len(), 13);
}

#[test]
fn same_seed_same_loss_curve() {
    let gpu = Gpu::new().unwrap();
    let config = MlpTrainConfig {
        epochs: 2,
        rows: 800,
        ..Default::default()
    };
    let a = train_mlp_synthetic(&gpu, &config, |_| {}).unwrap();
    let b = train_mlp_synthetic(&gpu, &config, |_| {}).unwrap();
    assert_eq!(a.train_loss, b.train_loss);
    assert_eq!(a.val_loss, b.val_loss);
}
