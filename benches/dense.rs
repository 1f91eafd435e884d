//! dense kernels at the poster model's shapes (batch 32: 51200→128, 128→128,
//! 128→25). Throughput is reported in elements/s where one element = one
//! FLOP (a multiply-add counts 2), so criterion's "Gelem/s" reads GFLOP/s.
//!
//!     cargo bench --bench dense
//!
//! Each iteration records one kernel and waits for the GPU (submit + poll).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use postergrad::ops::dense::{
    dense_backward_bias, dense_backward_input, dense_backward_weight, dense_forward,
};
use postergrad::rng::Rng;
use postergrad::{Gpu, Tensor};

const SHAPES: &[(usize, usize, usize)] = &[(32, 51200, 128), (32, 128, 128), (32, 128, 25)];

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("a GPU adapter");
    eprintln!("adapter: {}", gpu.adapter());
    let mut rng = Rng::new(0);
    let mut group = c.benchmark_group("dense");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(2));
    for &(rows, k, cols) in SHAPES {
        let x = Tensor::from_slice(&gpu, [rows, k], &rng.vec_f32(rows * k, -1.0, 1.0)).unwrap();
        let w = Tensor::from_slice(&gpu, [k, cols], &rng.vec_f32(k * cols, -0.1, 0.1)).unwrap();
        let b = Tensor::zeros(&gpu, [cols], "b").unwrap();
        let dy =
            Tensor::from_slice(&gpu, [rows, cols], &rng.vec_f32(rows * cols, -1.0, 1.0)).unwrap();
        let dx = Tensor::zeros(&gpu, [rows, k], "dx").unwrap();
        let dw = Tensor::zeros(&gpu, [k, cols], "dw").unwrap();
        let db = Tensor::zeros(&gpu, [cols], "db").unwrap();
        let shape = format!("{rows}x{k}->{cols}");
        let matmul = (2 * rows * k * cols) as u64;

        group.throughput(Throughput::Elements(matmul));
        group.bench_function(BenchmarkId::new("dense_forward", &shape), |bch| {
            bch.iter(|| {
                let y = dense_forward(&gpu, &x, &w, &b).unwrap();
                gpu.sync().unwrap();
                y
            })
        });
        group.bench_function(BenchmarkId::new("dense_backward_input", &shape), |bch| {
            bch.iter(|| {
                dense_backward_input(&gpu, &dy, &w, &dx).unwrap();
                gpu.sync().unwrap();
            })
        });
        group.bench_function(BenchmarkId::new("dense_backward_weight", &shape), |bch| {
            bch.iter(|| {
                dense_backward_weight(&gpu, &x, &dy, &dw).unwrap();
                gpu.sync().unwrap();
            })
        });
        group.throughput(Throughput::Elements((rows * cols) as u64));
        group.bench_function(BenchmarkId::new("dense_backward_bias", &shape), |bch| {
            bch.iter(|| {
                dense_backward_bias(&gpu, &dy, &db).unwrap();
                gpu.sync().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
