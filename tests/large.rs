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

    let y = conv2d::conv2d_forward(&gpu, &x, &wt, &b, config).unwrap();
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
