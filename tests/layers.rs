//! Documented behaviour of maxpool (ties, kernel ≠ stride) and dropout
//! (statistics, mask reproducibility) beyond what the gradient checks see.

use postergrad::ops::dropout::{self, DropoutConfig};
use postergrad::ops::maxpool::{self, MaxPoolConfig};
use postergrad::{Gpu, Mode, Tape, Tensor};

fn pool_grad(
    gpu: &Gpu,
    x: &[f32],
    dims: [usize; 4],
    config: MaxPoolConfig,
) -> (Vec<f32>, Vec<f32>) {
    let tape = Tape::new(gpu, Mode::Training);
    let xv = tape.leaf(Tensor::from_slice(gpu, dims, x).unwrap());
    let y = maxpool::maxpool(&tape, &xv, config).unwrap();
    let ones = Tensor::from_slice(gpu, y.shape().clone(), &vec![1.0; y.value.numel()]).unwrap();
    let g = tape.backward_with(&y, ones).unwrap();
    (
        y.value.to_vec(gpu).unwrap(),
        g.get(&xv).unwrap().to_vec(gpu).unwrap(),
    )
}

#[test]
fn maxpool_ties_go_to_the_first_maximum_in_scan_order() {
    let gpu = Gpu::new().unwrap();
    // one 2×2 window per quadrant of a 4×4 input
    #[rustfmt::skip]
    let x = [
        1.0, 1.0,   0.0, 5.0,
        1.0, 1.0,   5.0, 5.0,
        -2.0, -1.0, 3.0, 2.0,
        -1.0, -3.0, 1.0, 3.0,
    ];
    let (y, dx) = pool_grad(&gpu, &x, [1, 1, 4, 4], MaxPoolConfig::default());
    assert_eq!(y, vec![1.0, 5.0, -1.0, 3.0]);
    #[rustfmt::skip]
    let want = [
        1.0, 0.0,   0.0, 1.0,   // all-equal window: its first element; 5s: the first 5
        0.0, 0.0,   0.0, 0.0,
        0.0, 1.0,   1.0, 0.0,   // -1 appears twice: the first (row 2) wins; 3s: the first
        0.0, 0.0,   0.0, 0.0,
    ];
    assert_eq!(dx, want);
    assert_eq!(
        maxpool::cpu::maxpool_backward(
            &x.map(f64::from),
            &[1, 1, 4, 4],
            MaxPoolConfig::default(),
            &[1.0; 4]
        ),
        want.map(f64::from)
    );
}

#[test]
fn maxpool_with_overlapping_windows_sums_the_gradients_of_every_window() {
    let gpu = Gpu::new().unwrap();
    // 3×3 windows at stride 1 over a 4×4 input with its maximum in the centre
    // block: the 9 at (1, 1) is the max of all 4 windows.
    let mut x = [0.0f32; 16];
    x[5] = 9.0;
    x[10] = 8.0;
    let config = MaxPoolConfig {
        pool: (3, 3),
        stride: (1, 1),
    };
    let (y, dx) = pool_grad(&gpu, &x, [1, 1, 4, 4], config);
    assert_eq!(y, vec![9.0; 4]);
    assert_eq!(dx[5], 4.0);
    assert_eq!(dx.iter().sum::<f32>(), 4.0);
    // gaps: 1×1 windows at stride 3 never see most of the input
    let (y, dx) = pool_grad(
        &gpu,
        &x,
        [1, 1, 4, 4],
        MaxPoolConfig {
            pool: (1, 1),
            stride: (3, 3),
        },
    );
    assert_eq!(y, vec![0.0, 0.0, 0.0, 0.0]);
    assert_eq!(dx.iter().filter(|&&g| g == 1.0).count(), 4);
    assert_eq!(dx[0] + dx[3] + dx[12] + dx[15], 4.0);
}

#[test]
fn maxpool_rejects_windows_larger_than_the_input() {
    let gpu = Gpu::new().unwrap();
    let x = Tensor::zeros(&gpu, [1, 3, 1, 5], "x").unwrap();
    let msg = maxpool::maxpool_forward(&gpu, &x, MaxPoolConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("maxpool") && msg.contains("[1, 3, 1, 5]") && msg.contains("2×2"),
        "{msg}"
    );
}

#[test]
fn dropout_keeps_the_expected_fraction_and_scales_by_one_over_keep() {
    let gpu = Gpu::new().unwrap();
    let n = 1 << 20;
    for rate in [0.3f32, 0.5] {
        let config = DropoutConfig {
            rate,
            seed: 42,
            step: 7,
        };
        let x = Tensor::uninit(&gpu, [n], "x").unwrap();
        postergrad::ops::fill(&gpu, &x, 1.0).unwrap();
        let y = dropout::dropout_forward(&gpu, &x, config)
            .unwrap()
            .to_vec(&gpu)
            .unwrap();
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
        // 6 standard deviations of a binomial proportion: fails by chance ~1e-9
        let sigma = ((rate * (1.0 - rate)) as f64 / n as f64).sqrt();
        assert!(
            (kept - (1.0 - rate as f64)).abs() < 6.0 * sigma,
            "rate {rate}: kept {kept}"
        );
        let scale = 1.0 / (1.0 - rate);
        assert!(
            y.iter().all(|&v| v == 0.0 || v == scale),
            "kept values are scaled by 1/(1-p)"
        );
    }
}

#[test]
fn dropout_mask_is_the_same_in_backward_and_follows_the_seed() {
    let gpu = Gpu::new().unwrap();
    let n = 100_000;
    let config = DropoutConfig {
        rate: 0.4,
        seed: 9,
        step: 1,
    };
    let tape = Tape::new(&gpu, Mode::Training);
    let x = tape.leaf(Tensor::from_slice(&gpu, [n], &vec![1.0; n]).unwrap());
    let y = dropout::dropout(&tape, &x, config).unwrap();
    let forward = y.value.to_vec(&gpu).unwrap();
    let g = tape
        .backward_with(&y, Tensor::from_slice(&gpu, [n], &vec![1.0; n]).unwrap())
        .unwrap();
    let backward = g.get(&x).unwrap().to_vec(&gpu).unwrap();
    assert_eq!(
        forward, backward,
        "backward must recompute exactly the forward's mask"
    );

    // The mask is the CPU hash's: the same on every adapter.
    for (i, &v) in forward.iter().enumerate() {
        assert_eq!(
            v != 0.0,
            dropout::cpu::keep(&config, i as u32),
            "element {i}"
        );
    }
    // Same seed and step: same mask; another step or seed: another mask.
    let again = dropout::dropout_forward(&gpu, &y.value, config).unwrap();
    let x1 = Tensor::from_slice(&gpu, [n], &vec![1.0; n]).unwrap();
    assert_eq!(
        dropout::dropout_forward(&gpu, &x1, config)
            .unwrap()
            .to_vec(&gpu)
            .unwrap(),
        forward
    );
    drop(again);
    for other in [
        DropoutConfig { step: 2, ..config },
        DropoutConfig { seed: 10, ..config },
    ] {
        let z = dropout::dropout_forward(&gpu, &x1, other)
            .unwrap()
            .to_vec(&gpu)
            .unwrap();
        let same = z
            .iter()
            .zip(&forward)
            .filter(|(a, b)| (**a == 0.0) == (**b == 0.0))
            .count();
        assert!(same < n * 6 / 10, "{other:?} agrees on {same} of {n}");
    }
}

#[test]
fn dropout_is_the_identity_in_inference_and_rejects_bad_rates() {
    let gpu = Gpu::new().unwrap();
    let tape = Tape::new(&gpu, Mode::Inference);
    let x = tape.constant(Tensor::from_slice(&gpu, [3], &[1.0, 2.0, 3.0]).unwrap());
    let y = dropout::dropout(
        &tape,
        &x,
        DropoutConfig {
            rate: 0.5,
            seed: 0,
            step: 0,
        },
    )
    .unwrap();
    assert!(y.value.same_buffer(&x.value));
    for rate in [1.0, -0.1, f32::NAN] {
        let err = dropout::dropout(
            &tape,
            &x,
            DropoutConfig {
                rate,
                seed: 0,
                step: 0,
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("dropout rate: must be in [0, 1)"),
            "{err}"
        );
    }
}

#[test]
fn both_maxpool_backward_kernels_agree_bit_for_bit_where_windows_do_not_overlap() {
    use maxpool::{maxpool_backward_with, MaxPoolBackward};
    let gpu = Gpu::new().unwrap();
    let mut rng = postergrad::rng::Rng::new(5);
    let dims = [3, 4, 13, 11];
    let n: usize = dims.iter().product();
    // values on a coarse grid: many ties, where the first-maximum rule matters
    let x: Vec<f32> = (0..n)
        .map(|_| (rng.uniform() * 4.0).floor() as f32)
        .collect();
    let xt = Tensor::from_slice(&gpu, dims, &x).unwrap();
    for config in [
        MaxPoolConfig::default(),
        MaxPoolConfig {
            pool: (2, 2),
            stride: (3, 3),
        },
        MaxPoolConfig {
            pool: (3, 2),
            stride: (3, 2),
        },
    ] {
        assert_eq!(
            MaxPoolBackward::for_config(config),
            MaxPoolBackward::PerWindow
        );
        let o = maxpool::output_shape(&dims, config).unwrap();
        let m: usize = o.iter().product();
        let dy = Tensor::from_slice(&gpu, o, &rng.vec_f32(m, -1.0, 1.0)).unwrap();
        let start = rng.vec_f32(n, -1.0, 1.0); // dx accumulates into this
        let run = |kernel| {
            let dx = Tensor::from_slice(&gpu, dims, &start).unwrap();
            maxpool_backward_with(&gpu, &xt, &dy, &dx, config, kernel).unwrap();
            dx.to_vec(&gpu).unwrap()
        };
        let (per_input, per_window) = (
            run(MaxPoolBackward::PerInput),
            run(MaxPoolBackward::PerWindow),
        );
        assert_eq!(per_input, per_window, "{config:?}");
        assert_ne!(per_window, start, "{config:?}: nothing was added");
    }
    // overlapping windows: the per-window kernel would race, so it refuses
    let overlap = MaxPoolConfig {
        pool: (3, 3),
        stride: (2, 2),
    };
    assert_eq!(
        MaxPoolBackward::for_config(overlap),
        MaxPoolBackward::PerInput
    );
    let o = maxpool::output_shape(&dims, overlap).unwrap();
    let dy = Tensor::zeros(&gpu, o, "dy").unwrap();
    let dx = Tensor::zeros(&gpu, dims, "dx").unwrap();
    let err = maxpool_backward_with(&gpu, &xt, &dy, &dx, overlap, MaxPoolBackward::PerWindow)
        .unwrap_err()
        .to_string();
    assert!(err.contains("overlap"), "{err}");
}
