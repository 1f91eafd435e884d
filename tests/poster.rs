//! The poster model: its size matches the tutorial's, and one full training
//! step's gradients match an f64 CPU reference built from the ops' plain-loop
//! references (batch 4 at 46×46, the smallest input the conv stack takes;
//! every parameter's gradient within 1e-4 of its largest element; measured
//! ≤ 2.3e-5. At batch 2 batch-norm over two samples makes x̂ = ±1 and the
//! step ill-conditioned: f32 rounding then reaches 1.7e-2 of a gradient).

use postergrad::nn::{Model, ModelKind};
use postergrad::ops::{
    batchnorm::cpu as bn, bce::cpu as bce, conv2d::cpu as conv, conv2d::ConvGeometry,
    dense::cpu as dense, dropout::cpu as drop, maxpool::cpu as pool, relu::cpu as relu,
    sigmoid::cpu as sig, BatchNormConfig, Conv2dConfig, DropoutConfig, MaxPoolConfig,
};
use postergrad::rng::Rng;
use postergrad::{Gpu, Mode, Param, Tape, Tensor};

#[test]
fn parameter_counts_match_the_tutorial_at_350() {
    let gpu = Gpu::new().unwrap();
    let model = Model::new(&gpu, ModelKind::Poster, 350, 25, 0).unwrap();
    assert_eq!(model.param_counts(), (6_671_897, 992));
    let counted: usize = model.params().iter().map(|p| p.value.numel()).sum();
    assert_eq!(counted, 6_671_897);
    let pooled: Vec<usize> = ModelKind::Poster
        .describe(350, 25)
        .unwrap()
        .iter()
        .filter(|l| l.name.starts_with("max_pooling2d"))
        .map(|l| l.output[1])
        .collect();
    assert_eq!(pooled, vec![174, 86, 42, 20]);
}

#[test]
fn the_summary_prints_the_tutorials_totals() {
    let s = postergrad::nn::summary(ModelKind::Poster, 350, 25).unwrap();
    assert!(s.contains("Total params: 6,672,889"), "{s}");
    assert!(s.contains("Trainable params: 6,671,897"), "{s}");
    assert!(s.contains("Non-trainable params: 992"), "{s}");
    assert!(
        s.contains("[N, 16, 348, 348]") && s.contains("[N, 51200]"),
        "{s}"
    );
    let s = postergrad::nn::summary(ModelKind::Poster5, 400, 25).unwrap();
    assert!(
        s.contains("Total params: 3,790,457") && s.contains("[N, 28224]"),
        "{s}"
    );
}

#[test]
fn an_input_too_small_for_the_conv_stack_names_the_layer_and_the_minimum() {
    assert!(ModelKind::Poster.describe(46, 25).is_ok());
    let msg = ModelKind::Poster.describe(45, 25).unwrap_err().to_string();
    assert!(
        msg.contains("layer max_pooling2d_3 would receive 1×1") && msg.contains("--size 46"),
        "{msg}"
    );
    let msg = ModelKind::Poster.describe(8, 25).unwrap_err().to_string();
    assert!(
        msg.contains("layer max_pooling2d_1 would receive 1×1") && msg.contains("--size 46"),
        "{msg}"
    );
    let msg = ModelKind::Poster5.describe(60, 25).unwrap_err().to_string();
    assert!(
        msg.contains("poster5") && msg.contains("smallest input size that works is 76"),
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
    let model = Model::new(&gpu, ModelKind::Poster, size, labels, seed).unwrap();
    // Keras names: conv2d, conv2d_1, …; batch_normalization … _5; dense, dense_1, dense_2.
    let keras = |base: &str, i: usize| {
        if i == 0 {
            base.to_string()
        } else {
            format!("{base}_{i}")
        }
    };
    let param = |name: String| -> &Param { model.param(&name).unwrap_or_else(|| panic!("{name}")) };
    struct Block<'a> {
        w: &'a Param,
        b: &'a Param,
        gamma: &'a Param,
        beta: &'a Param,
        dropout: f32,
    }
    let convs: Vec<Block> = [0.3, 0.3, 0.4, 0.5]
        .into_iter()
        .enumerate()
        .map(|(i, dropout)| Block {
            w: param(format!("{}.kernel", keras("conv2d", i))),
            b: param(format!("{}.bias", keras("conv2d", i))),
            gamma: param(format!("{}.gamma", keras("batch_normalization", i))),
            beta: param(format!("{}.beta", keras("batch_normalization", i))),
            dropout,
        })
        .collect();
    let denses: Vec<Block> = (0..2)
        .map(|i| Block {
            w: param(format!("{}.kernel", keras("dense", i))),
            b: param(format!("{}.bias", keras("dense", i))),
            gamma: param(format!("{}.gamma", keras("batch_normalization", 4 + i))),
            beta: param(format!("{}.beta", keras("batch_normalization", 4 + i))),
            dropout: 0.5,
        })
        .collect();
    let (head_w, head_b) = (param("dense_2.kernel".into()), param("dense_2.bias".into()));
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
    for (i, c) in convs.iter().enumerate() {
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
    for (i, d) in denses.iter().enumerate() {
        let k = d.w.value.dims()[0];
        let pre = dense::dense_forward(&h, &read(&d.w.value), &read(&d.b.value), batch, k);
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
    let logits = dense::dense_forward(&h, &read(&head_w.value), &read(&head_b.value), batch, 128);
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
        dense::dense_backward(&h, &read(&head_w.value), &dlogits, batch, 128, labels);
    check("dense_2.kernel", &head_w.grad, &dw);
    check("dense_2.bias", &head_b.grad, &db);
    for (i, d) in denses.iter().enumerate().rev() {
        let (input, pre, act) = &dense_saved[i];
        let dbn = drop::dropout_backward(&dh, &dcfg(4 + i as u32, d.dropout));
        let (dact, dgamma, dbeta) =
            bn::backward_training(act, &read(&d.gamma.value), &dbn, eps, batch, 128, 1);
        check(&format!("dense block {i} gamma"), &d.gamma.grad, &dgamma);
        check(&format!("dense block {i} beta"), &d.beta.grad, &dbeta);
        let dpre = relu::relu_backward(pre, &dact);
        let k = d.w.value.dims()[0];
        let (dx, dw, db) = dense::dense_backward(input, &read(&d.w.value), &dpre, batch, k, 128);
        check(&format!("{}.kernel", keras("dense", i)), &d.w.grad, &dw);
        check(&format!("{}.bias", keras("dense", i)), &d.b.grad, &db);
        dh = dx;
    }
    for (i, c) in convs.iter().enumerate().rev() {
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
        check(&format!("{}.kernel", keras("conv2d", i)), &c.w.grad, &dw);
        check(&format!("{}.bias", keras("conv2d", i)), &c.b.grad, &db);
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

/// The fused block tail (`ops::bnpool`: batch norm, max-pool and dropout as
/// one op) computes the same training step as one op per layer: the same
/// loss, every parameter's gradient within 1e-5 of its largest element, the
/// same moving statistics, and the same inference output after the step
/// (batch 4 at 64×64: the second block pools a 29×29 map, whose last row and
/// column are in no window).
#[test]
fn the_fused_block_tail_matches_one_op_per_layer() {
    use postergrad::nn::Fusion;
    let gpu = Gpu::new().unwrap();
    let (size, batch, labels) = (64, 4, 5);
    let mut rng = Rng::new(5);
    let x = Tensor::from_slice(
        &gpu,
        [batch, 3, size, size],
        &rng.vec_f32(batch * 3 * size * size, 0.0, 1.0),
    )
    .unwrap();
    let y: Vec<f32> = (0..batch * labels)
        .map(|i| (i % 3 == 0) as u8 as f32)
        .collect();
    let y = Tensor::from_slice(&gpu, [batch, labels], &y).unwrap();
    let run = |fusion: Fusion| {
        let mut model = Model::new(&gpu, ModelKind::Poster, size, labels, 9).unwrap();
        model.fusion = fusion;
        let tape = Tape::new(&gpu, Mode::Training);
        let loss = model
            .loss(
                &tape,
                &tape.constant(x.clone()),
                &tape.constant(y.clone()),
                7,
            )
            .unwrap();
        tape.backward(&loss).unwrap();
        let mut out = vec![("loss".to_string(), loss.value.to_vec(&gpu).unwrap())];
        for (name, t) in model.named_tensors() {
            out.push((name.clone(), t.to_vec(&gpu).unwrap()));
        }
        for p in model.params() {
            out.push((format!("{} grad", p.name), p.grad.to_vec(&gpu).unwrap()));
        }
        // inference after the step: moving statistics, no dropout
        let tape = Tape::new(&gpu, Mode::Inference);
        let probs = model.forward(&tape, &tape.constant(x.clone()), 0).unwrap();
        out.push(("inference".into(), probs.value.to_vec(&gpu).unwrap()));
        out
    };
    let (fused, plain) = (run(Fusion::BlockTail), run(Fusion::Off));
    assert_eq!(fused.len(), plain.len());
    assert!(fused.len() > 2 * 26, "loss, tensors and 26 gradients");
    for ((name, a), (_, b)) in fused.iter().zip(&plain) {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let err = a.iter().zip(b).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        assert!(
            err <= 1e-5 * scale,
            "{name}: fused and per-layer differ by {err:e} (largest {scale:e})"
        );
    }
}
