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
        padding: (0, 0),
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
            padding: (0, 0),
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
            padding: (0, 0),
        },
        MaxPoolConfig {
            pool: (3, 2),
            stride: (3, 2),
            padding: (0, 0),
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
        padding: (0, 0),
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

/// bnpool (fused) and batch norm → max-pool → dropout run one op each, on
/// the tape in training mode with the conv's relu fused in: the output and
/// the gradients of z, γ and β, for a seed gradient that varies.
type Outputs = [Vec<f32>; 4];

fn bnpool_both_ways(
    gpu: &Gpu,
    dims: [usize; 4],
    z: &[f32],
    gamma: &[f32],
    beta: &[f32],
) -> [Outputs; 2] {
    use postergrad::ops::{self, BatchNormConfig, BatchNormState, BnInput, BnPoolConfig};
    let c = dims[1];
    let batchnorm = BatchNormConfig {
        input: BnInput::Relu,
        ..Default::default()
    };
    let drop = DropoutConfig {
        rate: 0.25,
        seed: 3,
        step: 1,
    };
    let run = |fused: bool| {
        let tape = Tape::new(gpu, Mode::Training);
        let zv = tape.leaf(Tensor::from_slice(gpu, dims, z).unwrap());
        let gamma = tape.leaf(Tensor::from_slice(gpu, [c], gamma).unwrap());
        let beta = tape.leaf(Tensor::from_slice(gpu, [c], beta).unwrap());
        let state = BatchNormState::new(gpu, c).unwrap();
        let p = if fused {
            let config = BnPoolConfig {
                batchnorm,
                dropout: Some(drop),
            };
            ops::bnpool(&tape, &zv, &gamma, &beta, &state, config).unwrap()
        } else {
            let y = ops::batch_norm(&tape, &zv, &gamma, &beta, &state, batchnorm).unwrap();
            let y = maxpool::maxpool(&tape, &y, MaxPoolConfig::default()).unwrap();
            dropout::dropout(&tape, &y, drop).unwrap()
        };
        let m = p.value.numel();
        let seed: Vec<f32> = (0..m).map(|i| (i % 5) as f32 - 2.0).collect();
        let seed = Tensor::from_slice(gpu, p.shape().clone(), &seed).unwrap();
        let out = p.value.to_vec(gpu).unwrap();
        let g = tape.backward_with(&p, seed).unwrap();
        let read = |v| g.get(v).unwrap().to_vec(gpu).unwrap();
        [out, read(&zv), read(&gamma), read(&beta)]
    };
    [run(true), run(false)]
}

fn assert_close(fused: &Outputs, plain: &Outputs) {
    for (what, (a, b)) in ["output", "dz", "dgamma", "dbeta"]
        .iter()
        .zip(fused.iter().zip(plain))
    {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }
    assert!(fused[1].iter().any(|&v| v != 0.0), "a gradient reached z");
}

/// bnpool on z with many ties (whole windows equal, and relu's zeros)
/// against the same three layers run one op each: the same
/// output and the same gradients of z, γ and β, so ties reach the same
/// element (the first maximum of y in scan order) in both.
#[test]
fn bnpool_routes_ties_like_batchnorm_maxpool_and_dropout_in_a_row() {
    let gpu = Gpu::new().unwrap();
    let dims = [2, 3, 6, 9];
    let n: usize = dims.iter().product();
    // every other window constant (four tied corners), the others with four
    // distinct values; windows of z ≤ 0 tie at relu's 0
    let z: Vec<f32> = (0..n)
        .map(|i| {
            let (h, w) = ((i / dims[3]) % dims[2], i % dims[3]);
            let level = ((h / 2) * 5 + w / 2 + i / (dims[2] * dims[3])) % 4;
            let corner = if (h / 2 + w / 2) % 2 == 1 {
                (h % 2 * 2 + w % 2) as f32 * 0.25
            } else {
                0.0
            };
            level as f32 - 1.0 + corner
        })
        .collect();
    let [fused, plain] = bnpool_both_ways(&gpu, dims, &z, &[1.0, -0.5, 2.0], &[0.1, 0.2, -0.3]);
    assert_close(&fused, &plain);
}

/// The bnpool kernels read six values per channel (mean, invstd, γ, β, Σdy,
/// Σdy·x̂) from one 64 KiB uniform window: at the most channels it holds
/// (16,384 / 6 = 2,730 in f32) the last channel's values sit at the
/// window's end and still match the unfused ops; one channel more is a
/// clear error that names the limit and the way out.
#[test]
fn bnpool_reads_every_channel_of_a_full_channel_window_and_rejects_one_more() {
    use postergrad::ops::{bnpool::bnpool_forward, BnPoolConfig};
    let gpu = Gpu::new().unwrap();
    if gpu.real_bytes() != 4 {
        return;
    }
    let c = 2730;
    let dims = [2, c, 2, 4];
    let n: usize = dims.iter().product();
    let z: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 23) as f32 / 7.0 - 1.0)
        .collect();
    let gamma: Vec<f32> = (0..c).map(|i| 0.5 + (i % 13) as f32 / 8.0).collect();
    let beta: Vec<f32> = (0..c).map(|i| (i % 7) as f32 / 4.0 - 0.75).collect();
    let [fused, plain] = bnpool_both_ways(&gpu, dims, &z, &gamma, &beta);
    assert_close(&fused, &plain);

    let c = 2731;
    let z = Tensor::zeros(&gpu, [1, c, 2, 2], "z").unwrap();
    let ones = Tensor::from_slice(&gpu, [c], &vec![1.0; c]).unwrap();
    let stats = Tensor::zeros(&gpu, [2, c], "stats").unwrap();
    let msg = bnpool_forward(&gpu, &z, &ones, &ones, &stats, BnPoolConfig::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bnpool")
            && msg.contains("2730 channels")
            && msg.contains("[2731]")
            && msg.contains("batch_norm, maxpool and dropout"),
        "{msg}"
    );
}

/// bnpool_backward adds into dz (GradWrite::Add) or writes all of it
/// (GradWrite::Write, the tape's fresh buffer): Add into ones gives exactly
/// 1 + what Write gives, at every element, z ≤ 0 (Write: 0) included.
#[test]
fn bnpool_backward_adds_or_writes_the_whole_gradient() {
    use postergrad::ops::bnpool::{bnpool_backward, BnPoolGrads, BnPoolSaved};
    use postergrad::ops::{BatchNormConfig, BatchNormState, BnInput, BnPoolConfig};
    use postergrad::GradWrite;
    let gpu = Gpu::new().unwrap();
    let dims = [2, 2, 5, 7];
    let n: usize = dims.iter().product();
    let z: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 / 5.0 - 1.0).collect();
    let z = Tensor::from_slice(&gpu, dims, &z).unwrap();
    let gamma = Tensor::from_slice(&gpu, [2], &[1.5, 0.5]).unwrap();
    let beta = Tensor::from_slice(&gpu, [2], &[0.0, 1.0]).unwrap();
    let config = BnPoolConfig {
        batchnorm: BatchNormConfig {
            input: BnInput::Relu,
            ..Default::default()
        },
        dropout: None,
    };
    let state = BatchNormState::new(&gpu, 2).unwrap();
    let stats = postergrad::ops::batchnorm::batchnorm_statistics(
        &gpu,
        &z,
        &state,
        config.batchnorm,
        Mode::Training,
    )
    .unwrap();
    let dp = Tensor::from_slice(&gpu, [2, 2, 2, 3], &[0.5; 24]).unwrap();
    let backward = |dz: &Tensor, write| {
        let mode = Mode::Training;
        let saved = BnPoolSaved {
            z: &z,
            gamma: &gamma,
            beta: &beta,
            stats: &stats,
        };
        let grads = BnPoolGrads {
            dz: Some((dz, write)),
            ..Default::default()
        };
        bnpool_backward(&gpu, &saved, &dp, mode, config, grads).unwrap();
        dz.to_vec(&gpu).unwrap()
    };
    let written = backward(
        &Tensor::from_slice(&gpu, dims, &vec![f32::NAN; n]).unwrap(),
        GradWrite::Write,
    );
    let added = backward(
        &Tensor::from_slice(&gpu, dims, &vec![1.0; n]).unwrap(),
        GradWrite::Add,
    );
    assert!(
        written.iter().all(|v| v.is_finite()),
        "every element written: {written:?}"
    );
    assert!(written.contains(&0.0) && written.iter().any(|&v| v != 0.0));
    for (i, (w, a)) in written.iter().zip(&added).enumerate() {
        assert!(
            (1.0 + w - a).abs() < 1e-6,
            "[{i}]: write {w}, add into 1 {a}"
        );
    }
}

/// conv2d's backward-input adds into dx (GradWrite::Add) or writes all of
/// it (GradWrite::Write, the tape's fresh buffer, left NaN here): Write
/// matches the f64 reference and Add into ones gives 1 + that, for each
/// kernel the host can pick — the 3×3 subgroup kernel over two weight
/// windows (130 channels of dy: the first window writes, the second adds),
/// the strips kernel (5×5) and the strided kernel (which clears dx first).
#[test]
fn conv2d_backward_input_adds_or_writes_the_whole_gradient() {
    use postergrad::ops::conv2d::{self, cpu, ConvGeometry, Forward, Padding};
    use postergrad::ops::Conv2dConfig;
    use postergrad::GradWrite;
    let gpu = Gpu::new().unwrap();
    let mut rng = postergrad::rng::Rng::new(5);
    let same = |stride| Conv2dConfig {
        stride,
        padding: Padding::Same,
    };
    let valid = Conv2dConfig {
        stride: 1,
        padding: Padding::Valid,
    };
    let cases = [
        ([2, 3, 9, 11], [130, 3, 3, 3], same(1)),
        ([2, 4, 9, 10], [5, 4, 5, 5], valid),
        ([2, 3, 9, 9], [4, 3, 3, 3], same(2)),
    ];
    for (xd, wd, config) in cases {
        let g = ConvGeometry::new(&xd, &wd, config).unwrap();
        let yd = g.output_shape();
        let (nx, nw, ny) = (
            xd.iter().product::<usize>(),
            wd.iter().product::<usize>(),
            yd.iter().product::<usize>(),
        );
        let (w, dy) = (rng.vec_f32(nw, -1.0, 1.0), rng.vec_f32(ny, -1.0, 1.0));
        let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
        let (want, _, _) = cpu::conv2d_backward(&g, &vec![0.0; nx], &f64s(&w), &f64s(&dy));
        let wt = Tensor::from_slice(&gpu, wd, &w).unwrap();
        let dyt = Tensor::from_slice(&gpu, yd, &dy).unwrap();
        let mut kernels = vec![Forward::Strips];
        if Forward::for_geometry(&gpu, &g) == Forward::Subgroup3x3 {
            kernels.push(Forward::Subgroup3x3);
        }
        for kernel in kernels {
            let run = |fill: f32, write| {
                let dx = Tensor::from_slice(&gpu, xd, &vec![fill; nx]).unwrap();
                conv2d::conv2d_backward_input_with(&gpu, &dyt, &wt, &dx, config, kernel, write)
                    .unwrap();
                dx.to_vec(&gpu).unwrap()
            };
            let written = run(f32::NAN, GradWrite::Write);
            let added = run(1.0, GradWrite::Add);
            let case = format!("x {xd:?}, w {wd:?}, stride {}, {kernel:?}", config.stride);
            for (i, ((w, a), r)) in written.iter().zip(&added).zip(&want).enumerate() {
                assert!(
                    (*w as f64 - r).abs() < 1e-4 * (1.0 + r.abs()),
                    "{case}: dx[{i}] written {w}, reference {r}"
                );
                assert!(
                    (1.0 + w - a).abs() < 1e-4 * (1.0 + w.abs()),
                    "{case}: dx[{i}] written {w}, added into 1 {a}"
                );
            }
        }
    }
}

#[test]
fn dense_forward_splits_a_long_k_and_matches_the_f64_reference() {
    use postergrad::ops::dense::{self, cpu};
    let gpu = Gpu::new().unwrap();
    // a few outputs over a long k (the poster model's first dense layer in
    // small): the adapter gets slices of k, summed by reduce_partials; k not
    // a multiple of 4 or of the slice, rows and columns past whole tiles
    for (rows, k, cols) in [(5, 3001, 13), (17, 1030, 9), (3, 37, 5)] {
        let (slices, k_slice) = dense::forward_k_split(&gpu, rows, k, cols);
        assert!(slices * k_slice >= k && (slices - 1) * k_slice < k);
        assert_eq!(k_slice % 4, 0);
        if k >= 512 {
            assert!(slices > 1, "{rows}×{k}×{cols}: k not split");
        }
        let fill = |n: usize, seed: f64| -> Vec<f64> {
            (0..n)
                .map(|i| ((i as f64 * 0.7548 + seed) % 1.0) - 0.5)
                .collect()
        };
        let (x, w, b) = (fill(rows * k, 0.1), fill(k * cols, 0.3), fill(cols, 0.9));
        let want = cpu::dense_forward(&x, &w, &b, rows, k);
        let t = |shape: Vec<usize>, v: &[f64]| {
            let v32: Vec<f32> = v.iter().map(|&a| a as f32).collect();
            Tensor::from_slice(&gpu, shape, &v32).unwrap()
        };
        let y = dense::dense_forward(
            &gpu,
            &t(vec![rows, k], &x),
            &t(vec![k, cols], &w),
            &t(vec![cols], &b),
        )
        .unwrap();
        assert_eq!(y.dims(), &[rows, cols]);
        let got = y.to_vec_f64(&gpu).unwrap();
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            // f32 inputs and sums over k ≤ 3001 terms of size ≤ 0.25
            assert!(
                (g - e).abs() <= 2e-4,
                "{rows}×{k}×{cols} [{i}]: {g} vs {e} ({slices} slices)"
            );
        }
    }
}

#[test]
fn maxpool_padding_never_wins() {
    let gpu = Gpu::new().unwrap();
    // every input negative: ResNet's 3×3 stride-2 pool with padding 1 takes
    // each window's maximum from the input (a zero padding would give 0 at
    // the edges, as would a kernel that forgot to skip it)
    let neg: Vec<f32> = (0..16).map(|i| -1.0 - i as f32).collect();
    let (y, dx) = pool_grad(&gpu, &neg, [1, 1, 4, 4], MaxPoolConfig::RESNET);
    // windows start at rows/columns −1 and 1: maxima at (0,0), (0,1), (1,0), (1,1)
    assert_eq!(y, vec![-1.0, -2.0, -5.0, -6.0]);
    assert_eq!((dx[0], dx[1], dx[4], dx[5]), (1.0, 1.0, 1.0, 1.0));
    assert_eq!(dx.iter().sum::<f32>(), 4.0);
    // padding past half the window is refused (as PyTorch)
    let wide = MaxPoolConfig {
        padding: (2, 2),
        ..MaxPoolConfig::RESNET
    };
    let err = maxpool::output_shape(&[1, 1, 4, 4], wide)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most half the 3×3 pool"), "{err}");
}
