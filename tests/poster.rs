//! The poster model: its size matches the tutorial's, and one full training
//! step's gradients match an f64 CPU reference built from the ops' plain-loop
//! references (batch 4 at 46×46, the smallest input the conv stack takes;
//! every parameter's gradient within 1e-4 of its largest element; measured
//! ≤ 2.3e-5. At batch 2 batch-norm over two samples makes x̂ = ±1 and the
//! step ill-conditioned: f32 rounding then reaches 1.7e-2 of a gradient).

use postergrad::nn::PosterModel;
use postergrad::ops::{
    batchnorm::cpu as bn, bce::cpu as bce, conv2d::cpu as conv, conv2d::ConvGeometry,
    dense::cpu as dense, dropout::cpu as drop, maxpool::cpu as pool, relu::cpu as relu,
    sigmoid::cpu as sig, BatchNormConfig, Conv2dConfig, DropoutConfig, MaxPoolConfig,
};
use postergrad::rng::Rng;
use postergrad::{Gpu, Mode, Tape, Tensor};

#[test]
fn parameter_counts_match_the_tutorial_at_350() {
    let gpu = Gpu::new().unwrap();
    let model = PosterModel::new(&gpu, 350, 25, 0).unwrap();
    assert_eq!(model.param_counts(), (6_671_897, 992));
    assert_eq!(
        PosterModel::feature_sizes(350).unwrap(),
        vec![174, 86, 42, 20]
    );
}

#[test]
fn an_input_too_small_for_the_conv_stack_names_the_block_and_the_minimum() {
    assert_eq!(PosterModel::feature_sizes(46).unwrap(), vec![22, 10, 4, 1]);
    let msg = PosterModel::feature_sizes(45).unwrap_err().to_string();
    assert!(
        msg.contains("conv block 4") && msg.contains("46×46"),
        "{msg}"
    );
    let msg = PosterModel::feature_sizes(8).unwrap_err().to_string();
    assert!(
        msg.contains("conv block 2") && msg.contains("46×46"),
        "{msg}"
    );
}

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// max |a − b| / max |b|
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn one_training_step_matches_the_f64_reference_model() {
    let gpu = Gpu::new().unwrap();
    let (size, batch, labels, seed) = (46, 4, 5, 3);
    let model = PosterModel::new(&gpu, size, labels, seed).unwrap();
    let mut rng = Rng::new(11);
    let x = rng.vec_f32(batch * 3 * size * size, 0.0, 1.0);
    let y: Vec<f32> = (0..batch * labels)
        .map(|i| (i % 3 == 0) as u8 as f32)
        .collect();
    let step = 4;

    // GPU: one forward + backward.
    let tape = Tape::new(&gpu, Mode::Training);
    let xv = tape.constant(Tensor::from_slice(&gpu, [batch, 3, size, size], &x).unwrap());
    let yv = tape.constant(Tensor::from_slice(&gpu, [batch, labels], &y).unwrap());
    let loss = model.loss(&tape, &xv, &yv, step).unwrap();
    tape.backward(&loss).unwrap();
    let gpu_loss = loss.value.to_vec(&gpu).unwrap()[0] as f64;

    // f64 reference, layer by layer, keeping what backward needs.
    let read = |t: &Tensor| to64(&t.to_vec(&gpu).unwrap());
    let eps = BatchNormConfig::default().epsilon as f64;
    let dcfg = |layer: u32, rate: f32| DropoutConfig {
        rate,
        seed: (seed as u32).wrapping_mul(31).wrapping_add(layer),
        step,
    };
    struct ConvSaved {
        g: ConvGeometry,
        input: Vec<f64>,
        pre: Vec<f64>,
        act: Vec<f64>,
        bn_out: Vec<f64>,
        dims: [usize; 4],
    }
    let mut h = to64(&x);
    let mut dims = [batch, 3, size, size];
    let mut saved = vec![];
    for (i, c) in model.convs.iter().enumerate() {
        let w = read(&c.w.value);
        let g = ConvGeometry::new(&dims, c.w.value.dims(), Conv2dConfig::default()).unwrap();
        let pre = conv::conv2d_forward(&g, &h, &w, &read(&c.b.value));
        let act = relu::relu_forward(&pre);
        let plane = g.oh * g.ow;
        let (mean, var) = bn::batch_stats(&act, batch, g.cout, plane);
        let bn_out = bn::forward_with(
            &act,
            &read(&c.gamma.value),
            &read(&c.beta.value),
            &mean,
            &var,
            eps,
            g.cout,
            plane,
        );
        let odims = g.output_shape();
        let pooled = pool::maxpool_forward(&bn_out, &odims, MaxPoolConfig::default());
        let out = drop::dropout_forward(&pooled, &dcfg(i as u32, c.dropout));
        saved.push(ConvSaved {
            g,
            input: h,
            pre,
            act,
            bn_out,
            dims: odims,
        });
        dims = [batch, g.cout, g.oh / 2, g.ow / 2];
        h = out;
    }
    let mut dense_saved = vec![];
    for (i, d) in model.dense.iter().enumerate() {
        let k = d.layer.inputs();
        let pre = dense::dense_forward(
            &h,
            &read(&d.layer.w.value),
            &read(&d.layer.b.value),
            batch,
            k,
        );
        let act = relu::relu_forward(&pre);
        let (mean, var) = bn::batch_stats(&act, batch, 128, 1);
        let bn_out = bn::forward_with(
            &act,
            &read(&d.gamma.value),
            &read(&d.beta.value),
            &mean,
            &var,
            eps,
            128,
            1,
        );
        let out = drop::dropout_forward(&bn_out, &dcfg(4 + i as u32, d.dropout));
        dense_saved.push((h, pre, act));
        h = out;
    }
    let logits = dense::dense_forward(
        &h,
        &read(&model.head.w.value),
        &read(&model.head.b.value),
        batch,
        128,
    );
    let p = sig::sigmoid_forward(&logits);
    let ref_loss = bce::bce_forward(&p, &to64(&y));
    assert!(
        (gpu_loss - ref_loss).abs() < 1e-4 * ref_loss,
        "loss {gpu_loss} vs {ref_loss}"
    );

    // Backward.
    let errors = std::cell::RefCell::new(Vec::<(String, f64)>::new());
    let check = |name: &str, got: &Tensor, want: &[f64]| {
        let e = rel_err(&got.to_vec(&gpu).unwrap(), want);
        errors.borrow_mut().push((name.to_string(), e));
    };
    let dp = bce::bce_backward(&p, &to64(&y), 1.0);
    let dlogits = sig::sigmoid_backward(&logits, &dp);
    let (mut dh, dw, db) =
        dense::dense_backward(&h, &read(&model.head.w.value), &dlogits, batch, 128, labels);
    check("dense_2.kernel", &model.head.w.grad, &dw);
    check("dense_2.bias", &model.head.b.grad, &db);
    for (i, d) in model.dense.iter().enumerate().rev() {
        let (input, pre, act) = &dense_saved[i];
        let dbn = drop::dropout_backward(&dh, &dcfg(4 + i as u32, d.dropout));
        let (dact, dgamma, dbeta) =
            bn::backward_training(act, &read(&d.gamma.value), &dbn, eps, batch, 128, 1);
        check(&format!("dense block {i} gamma"), &d.gamma.grad, &dgamma);
        check(&format!("dense block {i} beta"), &d.beta.grad, &dbeta);
        let dpre = relu::relu_backward(pre, &dact);
        let k = d.layer.inputs();
        let (dx, dw, db) =
            dense::dense_backward(input, &read(&d.layer.w.value), &dpre, batch, k, 128);
        check(&format!("dense_{i}.kernel"), &d.layer.w.grad, &dw);
        check(&format!("dense_{i}.bias"), &d.layer.b.grad, &db);
        dh = dx;
    }
    for (i, c) in model.convs.iter().enumerate().rev() {
        let s = &saved[i];
        let dpooled = drop::dropout_backward(&dh, &dcfg(i as u32, c.dropout));
        let dbn = pool::maxpool_backward(&s.bn_out, &s.dims, MaxPoolConfig::default(), &dpooled);
        let plane = s.g.oh * s.g.ow;
        let (dact, dgamma, dbeta) = bn::backward_training(
            &s.act,
            &read(&c.gamma.value),
            &dbn,
            eps,
            batch,
            s.g.cout,
            plane,
        );
        check(&format!("conv block {i} gamma"), &c.gamma.grad, &dgamma);
        check(&format!("conv block {i} beta"), &c.beta.grad, &dbeta);
        let dpre = relu::relu_backward(&s.pre, &dact);
        let (dx, dw, db) = conv::conv2d_backward(&s.g, &s.input, &read(&c.w.value), &dpre);
        check(&format!("conv2d_{i}.kernel"), &c.w.grad, &dw);
        check(&format!("conv2d_{i}.bias"), &c.b.grad, &db);
        dh = dx;
    }
    let errors = errors.into_inner();
    for (name, e) in &errors {
        println!("{name:<22} max |gpu − ref| / max |ref| = {e:.2e}");
    }
    assert_eq!(errors.len(), 26, "every parameter checked");
    for (name, e) in &errors {
        assert!(
            *e < 1e-4,
            "{name}: max error {e:.2e} of the largest gradient; all: {errors:?}"
        );
    }
}
