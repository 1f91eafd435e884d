//! The tape: accumulation, leaves, inference mode, and typed shape errors.

use postergrad::ops::{self, dense::cpu as dense_cpu};
use postergrad::{Error, Gpu, Mode, Param, Tape, Tensor};

fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn a_parameter_used_twice_gets_both_contributions() {
    // y = dense(dense(x, w, b), w, b): w and b are used by two ops.
    let gpu = Gpu::new().unwrap();
    let (rows, n) = (3, 5);
    let x: Vec<f32> = (0..rows * n).map(|i| (i as f32 * 0.37).sin()).collect();
    let w0: Vec<f32> = (0..n * n).map(|i| (i as f32 * 0.11).cos() * 0.4).collect();
    let b0: Vec<f32> = (0..n).map(|i| i as f32 * 0.1 - 0.2).collect();
    let w = Param::new(&gpu, "w", Tensor::from_slice(&gpu, [n, n], &w0).unwrap()).unwrap();
    let b = Param::new(&gpu, "b", Tensor::from_slice(&gpu, [n], &b0).unwrap()).unwrap();

    let tape = Tape::new(&gpu, Mode::Training);
    let xv = tape.leaf(Tensor::from_slice(&gpu, [rows, n], &x).unwrap());
    let (wv, bv) = (tape.param(&w), tape.param(&b));
    let h = ops::dense(&tape, &xv, &wv, &bv).unwrap();
    let y = ops::dense(&tape, &h, &wv, &bv).unwrap();
    let ones = Tensor::from_slice(&gpu, [rows, n], &vec![1.0; rows * n]).unwrap();
    let grads = tape.backward_with(&y, ones).unwrap();

    // The same by hand with the f64 reference.
    let (x64, w64, b64) = (to64(&x), to64(&w0), to64(&b0));
    let h64 = dense_cpu::dense_forward(&x64, &w64, &b64, rows, n);
    let dy = vec![1.0; rows * n];
    let (dh, dw2, db2) = dense_cpu::dense_backward(&h64, &w64, &dy, rows, n, n);
    let (dx, dw1, db1) = dense_cpu::dense_backward(&x64, &w64, &dh, rows, n, n);
    let close = |got: Vec<f32>, want: Vec<f64>| {
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    };
    close(
        w.grad.to_vec(&gpu).unwrap(),
        dw1.iter().zip(&dw2).map(|(a, b)| a + b).collect(),
    );
    close(
        b.grad.to_vec(&gpu).unwrap(),
        db1.iter().zip(&db2).map(|(a, b)| a + b).collect(),
    );
    close(grads.get(&xv).unwrap().to_vec(&gpu).unwrap(), dx);
}

#[test]
fn parameter_gradients_are_reset_by_each_backward() {
    let gpu = Gpu::new().unwrap();
    let w = Param::new(
        &gpu,
        "w",
        Tensor::from_slice(&gpu, [2, 1], &[0.5, -0.5]).unwrap(),
    )
    .unwrap();
    let b = Param::new(&gpu, "b", Tensor::zeros(&gpu, [1], "b").unwrap()).unwrap();
    let mut first = None;
    for _ in 0..3 {
        let tape = Tape::new(&gpu, Mode::Training);
        let x = tape.constant(Tensor::from_slice(&gpu, [1, 2], &[1.0, 2.0]).unwrap());
        let y = ops::dense(&tape, &x, &tape.param(&w), &tape.param(&b)).unwrap();
        let t = tape.constant(Tensor::from_slice(&gpu, [1, 1], &[1.0]).unwrap());
        let p = ops::sigmoid(&tape, &y).unwrap();
        let loss = ops::binary_cross_entropy(&tape, &p, &t).unwrap();
        tape.backward(&loss).unwrap();
        let g = w.grad.to_vec(&gpu).unwrap();
        assert_eq!(
            *first.get_or_insert(g.clone()),
            g,
            "gradients must not pile up across steps"
        );
    }
    // d/dw of −log σ(w·x) at w·x = −0.5: −(1 − σ(−0.5))·x
    let s = 1.0 / (1.0 + 0.5f64.exp());
    let g = first.unwrap();
    assert!(
        (g[0] as f64 + (1.0 - s)).abs() < 1e-6 && (g[1] as f64 + 2.0 * (1.0 - s)).abs() < 1e-6,
        "{g:?}"
    );
}

#[test]
fn constants_get_no_gradient_and_inference_records_nothing() {
    let gpu = Gpu::new().unwrap();
    let w = Param::new(
        &gpu,
        "w",
        Tensor::from_slice(&gpu, [2, 2], &[1.0, 0.0, 0.0, 1.0]).unwrap(),
    )
    .unwrap();
    let b = Param::new(&gpu, "b", Tensor::zeros(&gpu, [2], "b").unwrap()).unwrap();

    let tape = Tape::new(&gpu, Mode::Training);
    let x = tape.constant(Tensor::from_slice(&gpu, [1, 2], &[1.0, 2.0]).unwrap());
    let y = ops::relu(
        &tape,
        &ops::dense(&tape, &x, &tape.param(&w), &tape.param(&b)).unwrap(),
    )
    .unwrap();
    assert_eq!(tape.len(), 4, "two parameter leaves, dense, relu");
    let seed = Tensor::from_slice(&gpu, [1, 2], &[1.0, 1.0]).unwrap();
    let g = tape.backward_with(&y, seed).unwrap();
    assert!(g.get(&x).is_none());
    assert_eq!(w.grad.to_vec(&gpu).unwrap(), vec![1.0, 1.0, 2.0, 2.0]);

    let tape = Tape::new(&gpu, Mode::Inference);
    let x = tape.constant(Tensor::from_slice(&gpu, [1, 2], &[1.0, 2.0]).unwrap());
    let y = ops::dense(&tape, &x, &tape.param(&w), &tape.param(&b)).unwrap();
    assert_eq!(tape.len(), 0);
    assert!(!y.requires_grad());
    assert_eq!(y.value.to_vec(&gpu).unwrap(), vec![1.0, 2.0]);
    let err = tape
        .backward_with(&y, Tensor::zeros(&gpu, [1, 2], "s").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("inference mode"), "{err}");
}

#[test]
fn shape_errors_name_the_op_and_both_shapes() {
    let gpu = Gpu::new().unwrap();
    let tape = Tape::new(&gpu, Mode::Training);
    let x = tape.constant(Tensor::zeros(&gpu, [4, 3], "x").unwrap());
    let w = tape.constant(Tensor::zeros(&gpu, [5, 2], "w").unwrap());
    let b = tape.constant(Tensor::zeros(&gpu, [2], "b").unwrap());
    let err = ops::dense(&tape, &x, &w, &b).unwrap_err();
    assert!(matches!(err, Error::Shape { op: "dense", .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("dense") && msg.contains("[5, 2]") && msg.contains("[3, out]"),
        "{msg}"
    );

    let w = tape.constant(Tensor::zeros(&gpu, [3, 2], "w").unwrap());
    let bad_b = tape.constant(Tensor::zeros(&gpu, [3], "b").unwrap());
    let msg = ops::dense(&tape, &x, &w, &bad_b).unwrap_err().to_string();
    assert!(
        msg.contains("bias") && msg.contains("[3]") && msg.contains("[2]"),
        "{msg}"
    );

    let p = tape.constant(Tensor::zeros(&gpu, [2, 25], "p").unwrap());
    let t = tape.constant(Tensor::zeros(&gpu, [2, 24], "t").unwrap());
    let msg = ops::binary_cross_entropy(&tape, &p, &t)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("binary_cross_entropy") && msg.contains("[2, 24]") && msg.contains("[2, 25]"),
        "{msg}"
    );

    let msg = Tensor::from_slice(&gpu, [2, 3], &[1.0; 5])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("5 values") && msg.contains("[2, 3]"), "{msg}");
    let msg = Tensor::zeros(&gpu, [0, 3], "x").unwrap_err().to_string();
    assert!(msg.contains("[0, 3]"), "{msg}");
    let msg = x.value.reshape([5, 3]).unwrap_err().to_string();
    assert!(msg.contains("reshape") && msg.contains("[4, 3]"), "{msg}");
}

#[test]
fn reshape_is_a_view_of_the_same_buffer() {
    let gpu = Gpu::new().unwrap();
    let x = Tensor::from_slice(&gpu, [2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let before = gpu.stats().buffers_created;
    let v = x.reshape([6]).unwrap();
    assert!(v.same_buffer(&x));
    assert_eq!(gpu.stats().buffers_created, before);
    assert_eq!(v.to_vec(&gpu).unwrap(), x.to_vec(&gpu).unwrap());
}

#[test]
fn too_many_workgroups_is_split_not_an_error() {
    // 20 M elements = 78,125 workgroups of 256: over 65,535 in one dimension.
    let gpu = Gpu::new().unwrap();
    let n = 20_000_000;
    let x = Tensor::uninit(&gpu, [n], "x").unwrap();
    ops::fill(&gpu, &x, -2.0).unwrap();
    let y = ops::relu::relu_forward(&gpu, &x).unwrap();
    ops::add_scaled(&gpu, &x, -1.0, &y).unwrap(); // y = 0 − (−2) = 2
    let v = y.to_vec(&gpu).unwrap();
    assert_eq!(gpu.grid_1d(n, 256)[1], 2);
    assert!(
        v.iter().all(|&a| a == 2.0),
        "every element written, the last too: {}",
        v[n - 1]
    );
}
