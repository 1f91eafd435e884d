//! Tensors larger than one storage binding (128 MiB on lavapipe) and
//! dispatches past 65,535 workgroups per dimension, forward and backward.
//! Fewer channels than the poster model keep it quick; the sizes still pass
//! both limits.

use postergrad::ops::conv2d::{self, ConvGeometry};
use postergrad::ops::Conv2dConfig;
use postergrad::rng::Rng;
use postergrad::{Gpu, Tensor};

#[test]
fn conv2d_forward_and_backward_on_tensors_larger_than_one_binding() {
    let gpu = Gpu::new().unwrap();
    // y: 9 × 2 × 1998 × 1998 floats = 287 MB; x: 144 MB; pixel tiles: 70,160.
    let (n, cin, h, w, cout) = (9, 1, 2000, 2000, 2);
    let config = Conv2dConfig::default();
    let g = ConvGeometry::new(&[n, cin, h, w], &[cout, cin, 3, 3], config).unwrap();
    let y_bytes = (n * cout * g.oh * g.ow * 4) as u64;
    assert!(y_bytes > gpu.limits().max_storage_buffer_binding_size || !gpu.adapter().is_cpu);
    assert!((n * g.oh * g.ow).div_ceil(512) > 65_535);

    let mut rng = Rng::new(5);
    let xv = rng.vec_f32(n * cin * h * w, -1.0, 1.0);
    let wv = rng.vec_f32(cout * cin * 9, -0.5, 0.5);
    let bv = [0.25f32, -0.5];
    let x = Tensor::from_slice(&gpu, [n, cin, h, w], &xv).unwrap();
    let wt = Tensor::from_slice(&gpu, [cout, cin, 3, 3], &wv).unwrap();
    let b = Tensor::from_slice(&gpu, [cout], &bv).unwrap();

    let y = conv2d::conv2d_forward(&gpu, &x, &wt, Some(&b), config).unwrap();
    let yv = y.to_vec(&gpu).unwrap();
    // Spot-check outputs, the last sample's last pixel included.
    let conv_at = |n: usize, co: usize, oy: usize, ox: usize| -> f64 {
        let mut acc = bv[co] as f64;
        for ky in 0..3 {
            for kx in 0..3 {
                acc += xv[(n * h + oy + ky) * w + ox + kx] as f64 * wv[co * 9 + ky * 3 + kx] as f64;
            }
        }
        acc
    };
    let mut probes: Vec<(usize, usize, usize, usize)> = (0..500)
        .map(|_| {
            (
                rng.below(n),
                rng.below(cout),
                rng.below(g.oh),
                rng.below(g.ow),
            )
        })
        .collect();
    probes.push((n - 1, cout - 1, g.oh - 1, g.ow - 1));
    probes.push((4, 1, 1000, 3)); // inside the second binding window
    for &(pn, co, oy, ox) in &probes {
        let got = yv[((pn * cout + co) * g.oh + oy) * g.ow + ox] as f64;
        assert!(
            (got - conv_at(pn, co, oy, ox)).abs() < 1e-4,
            "y[{pn},{co},{oy},{ox}] = {got}"
        );
    }
    drop(yv);

    // Backward with dy = 1 everywhere: db = pixel count, dw[co, tap] = Σ x
    // under the tap, dx[i] = Σ of the weights whose taps cover i.
    let dy = Tensor::uninit(&gpu, g.output_shape(), "dy").unwrap();
    postergrad::ops::fill(&gpu, &dy, 1.0).unwrap();
    let dx = Tensor::zeros(&gpu, [n, cin, h, w], "dx").unwrap();
    let dw = Tensor::zeros(&gpu, [cout, cin, 3, 3], "dw").unwrap();
    let db = Tensor::zeros(&gpu, [cout], "db").unwrap();
    conv2d::conv2d_backward_input(&gpu, &dy, &wt, &dx, config).unwrap();
    conv2d::conv2d_backward_weight(&gpu, &x, &dy, &dw, config).unwrap();
    conv2d::conv2d_backward_bias(&gpu, &dy, &db).unwrap();

    let pixels = (n * g.oh * g.ow) as f64;
    for v in db.to_vec(&gpu).unwrap() {
        assert!(
            (v as f64 - pixels).abs() / pixels < 1e-5,
            "db {v} vs {pixels}"
        );
    }
    let dwv = dw.to_vec(&gpu).unwrap();
    for ky in 0..3 {
        for kx in 0..3 {
            let mut want = 0.0f64;
            for s in 0..n {
                for oy in 0..g.oh {
                    let row = &xv[(s * h + oy + ky) * w + kx..(s * h + oy + ky) * w + kx + g.ow];
                    want += row.iter().map(|&a| a as f64).sum::<f64>();
                }
            }
            for co in 0..cout {
                let got = dwv[co * 9 + ky * 3 + kx] as f64;
                assert!(
                    (got - want).abs() < 0.5,
                    "dw[{co},{ky},{kx}] = {got}, want {want}"
                );
            }
        }
    }
    let dxv = dx.to_vec(&gpu).unwrap();
    let wsum = |co_sum: &dyn Fn(usize, usize) -> bool| -> f64 {
        let mut s = 0.0;
        for co in 0..cout {
            for ky in 0..3 {
                for kx in 0..3 {
                    if co_sum(ky, kx) {
                        s += wv[co * 9 + ky * 3 + kx] as f64;
                    }
                }
            }
        }
        s
    };
    // an interior pixel is covered by every tap; a corner only by one
    let interior = wsum(&|_, _| true);
    let last = n * h * w - 1; // bottom-right corner of the last sample: tap (2, 2) only
    for i in [
        (4 * h + 1000) * w + 1000,
        (8 * h + 500) * w + 7,
        (2 * h + 1000) * w + 1500,
    ] {
        assert!(
            (dxv[i] as f64 - interior).abs() < 1e-4,
            "dx[{i}] = {}",
            dxv[i]
        );
    }
    assert!((dxv[last] as f64 - wsum(&|ky, kx| ky == 2 && kx == 2)).abs() < 1e-5);
    assert!((dxv[0] as f64 - wsum(&|ky, kx| ky == 0 && kx == 0)).abs() < 1e-5);
}

#[test]
fn relu_batchnorm_maxpool_dropout_on_a_tensor_larger_than_one_binding() {
    use postergrad::ops::{
        self, batchnorm, dropout, maxpool, relu, BatchNormConfig, BatchNormState, BnInput,
    };
    use postergrad::Mode;
    let gpu = Gpu::new().unwrap();
    // 9 × 2 × 1998 × 1998 floats = 287 MB, as conv2d's output above.
    let dims = [9usize, 2, 1998, 1998];
    let n: usize = dims.iter().product();
    let plane = dims[2] * dims[3];
    assert!((n * 4) as u64 > gpu.limits().max_storage_buffer_binding_size || !gpu.adapter().is_cpu);
    let mut rng = Rng::new(9);
    // channel 1 is shifted and wider, so per-channel statistics matter
    let xv: Vec<f32> = (0..n)
        .map(|i| {
            let v = rng.range(-1.0, 1.0) as f32;
            if (i / plane) % 2 == 1 {
                3.0 * v + 2.0
            } else {
                v
            }
        })
        .collect();
    let x = Tensor::from_slice(&gpu, dims, &xv).unwrap();

    // relu forward and backward
    let y = relu::relu_forward(&gpu, &x).unwrap();
    let ones = Tensor::uninit(&gpu, dims, "ones").unwrap();
    ops::fill(&gpu, &ones, 1.0).unwrap();
    let dx = Tensor::zeros(&gpu, dims, "dx").unwrap();
    relu::relu_backward(&gpu, &y, &ones, &dx).unwrap();
    let (yv, dxv) = (y.to_vec(&gpu).unwrap(), dx.to_vec(&gpu).unwrap());
    for i in [0, n / 2 + 17, n - 1, 5 * n / 9 + 3] {
        assert_eq!(yv[i], xv[i].max(0.0), "relu at {i}");
        assert_eq!(
            dxv[i],
            if xv[i] > 0.0 { 1.0 } else { 0.0 },
            "relu grad at {i}"
        );
    }
    drop((yv, dxv, y, dx));

    // batchnorm (training): per-channel mean 0 and variance var/(var + ε)
    let config = BatchNormConfig::default();
    let state = BatchNormState::new(&gpu, 2).unwrap();
    let stats = batchnorm::batchnorm_statistics(&gpu, &x, &state, config, Mode::Training).unwrap();
    let sv = stats.to_vec(&gpu).unwrap();
    assert!(
        sv[0].abs() < 2e-3 && (sv[1] - 2.0).abs() < 6e-3,
        "means {sv:?}"
    );
    let want_invstd = [
        1.0 / (1.0f32 / 3.0 + 1e-3).sqrt(),
        1.0 / (3.0f32 + 1e-3).sqrt(),
    ];
    for c in 0..2 {
        assert!(
            (sv[2 + c] / want_invstd[c] - 1.0).abs() < 2e-3,
            "invstd {sv:?}"
        );
    }
    let gamma = Tensor::from_slice(&gpu, [2], &[1.0, 1.0]).unwrap();
    let beta = Tensor::zeros(&gpu, [2], "beta").unwrap();
    let bn = batchnorm::batchnorm_forward(&gpu, &x, &gamma, &beta, &stats, BnInput::AsIs).unwrap();
    let bnv = bn.to_vec(&gpu).unwrap();
    for i in [3, n - 2, 7 * plane + 1234] {
        let c = (i / plane) % 2;
        let want = (xv[i] - sv[c]) * sv[2 + c];
        assert!(
            (bnv[i] - want).abs() < 1e-4,
            "bn at {i}: {} vs {want}",
            bnv[i]
        );
    }
    // backward with dy = 1: dx = γ·invstd·(1 − 1 − x̂·Σx̂/M) ≈ 0, dβ = M, dγ = Σ x̂ ≈ 0
    let (dx, dg, db) = (
        Tensor::zeros(&gpu, dims, "dx").unwrap(),
        Tensor::zeros(&gpu, [2], "dg").unwrap(),
        Tensor::zeros(&gpu, [2], "db").unwrap(),
    );
    let saved = batchnorm::BnSaved {
        x: &x,
        gamma: &gamma,
        stats: &stats,
    };
    let grads = batchnorm::BnGrads {
        dx: Some(&dx),
        dgamma: Some(&dg),
        dbeta: Some(&db),
    };
    batchnorm::batchnorm_backward(&gpu, &saved, &ones, Mode::Training, BnInput::AsIs, grads)
        .unwrap();
    let m = (dims[0] * plane) as f32;
    for v in db.to_vec(&gpu).unwrap() {
        assert!((v / m - 1.0).abs() < 1e-4, "dbeta {v} vs {m}");
    }
    for v in dg.to_vec(&gpu).unwrap() {
        assert!(v.abs() / m < 1e-3, "dgamma {v}");
    }
    assert!(dx.to_vec(&gpu).unwrap().iter().all(|v| v.abs() < 1e-3));
    drop((dx, bnv, stats));

    // maxpool 2×2: spot values, and backward sends exactly one 1 per window
    let pool = maxpool::MaxPoolConfig::default();
    let p = maxpool::maxpool_forward(&gpu, &bn, pool).unwrap();
    let pv = p.to_vec(&gpu).unwrap();
    let bnv = bn.to_vec(&gpu).unwrap();
    let (oh, ow) = (dims[2] / 2, dims[3] / 2);
    for (s, c, oy, ox) in [(8, 1, oh - 1, ow - 1), (4, 0, 500, 998), (0, 0, 0, 0)] {
        let base = ((s * 2 + c) * dims[2] + 2 * oy) * dims[3] + 2 * ox;
        let want = bnv[base]
            .max(bnv[base + 1])
            .max(bnv[base + dims[3]])
            .max(bnv[base + dims[3] + 1]);
        assert_eq!(pv[((s * 2 + c) * oh + oy) * ow + ox], want);
    }
    let pones = Tensor::uninit(&gpu, p.shape().clone(), "ones").unwrap();
    ops::fill(&gpu, &pones, 1.0).unwrap();
    let dx = Tensor::zeros(&gpu, dims, "dx").unwrap();
    maxpool::maxpool_backward(&gpu, &bn, &pones, &dx, pool).unwrap();
    let dxv = dx.to_vec(&gpu).unwrap();
    assert_eq!(dxv.iter().filter(|&&v| v == 1.0).count(), pv.len());
    assert_eq!(dxv.iter().filter(|&&v| v != 0.0 && v != 1.0).count(), 0);
    drop((dxv, dx, bnv, pv, p, bn));

    // dropout: kept fraction, and the backward mask equals the forward's
    let cfg = dropout::DropoutConfig {
        rate: 0.3,
        seed: 1,
        step: 2,
    };
    let d = dropout::dropout_forward(&gpu, &ones, cfg).unwrap();
    let dv = d.to_vec(&gpu).unwrap();
    let kept = dv.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
    assert!(
        (kept - 0.7).abs() < 6.0 * (0.21f64 / n as f64).sqrt(),
        "kept {kept}"
    );
    for i in [0usize, n / 3, n - 1] {
        assert_eq!(
            dv[i] != 0.0,
            dropout::cpu::keep(&cfg, i as u32),
            "mask at {i}"
        );
    }
    let dx = Tensor::zeros(&gpu, dims, "dx").unwrap();
    dropout::dropout_backward(&gpu, &ones, &dx, cfg).unwrap();
    assert!(
        dx.to_vec(&gpu).unwrap() == dv,
        "backward mask differs from the forward's"
    );
}
