//! Datasets held in host memory as f32 rows.

use crate::rng::Rng;

/// A multi-label dataset: `n` rows of `features` inputs and `labels` 0/1 targets.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub n: usize,
    pub features: usize,
    pub labels: usize,
}

impl Dataset {
    /// A synthetic multi-label problem a pixel-blind model cannot solve: each
    /// label is on when a fixed random nonlinear feature of the input passes
    /// a threshold chosen so that label frequencies are skewed (from ~45 %
    /// down to ~5 %), like genres.
    pub fn synthetic_multilabel(n: usize, features: usize, labels: usize, seed: u64) -> Dataset {
        let mut rng = Rng::new(seed);
        // A hidden teacher: label j = [Σ_h a_jh·relu(u_h·x) > τ_j].
        let hidden = 16;
        let u: Vec<f64> = (0..hidden * features).map(|_| rng.normal()).collect();
        let a: Vec<f64> = (0..labels * hidden).map(|_| rng.normal()).collect();
        let x: Vec<f32> = (0..n * features).map(|_| rng.normal() as f32).collect();
        let mut score = vec![0.0f64; n * labels];
        for i in 0..n {
            let h: Vec<f64> = (0..hidden)
                .map(|k| {
                    let s: f64 = (0..features)
                        .map(|f| u[k * features + f] * x[i * features + f] as f64)
                        .sum();
                    (s / (features as f64).sqrt()).max(0.0)
                })
                .collect();
            for j in 0..labels {
                score[i * labels + j] = (0..hidden).map(|k| a[j * hidden + k] * h[k]).sum();
            }
        }
        // Threshold each label at a quantile that makes its frequency skewed.
        let mut y = vec![0.0f32; n * labels];
        for j in 0..labels {
            let freq = 0.45 - 0.40 * j as f64 / (labels.max(2) - 1) as f64;
            let mut col: Vec<f64> = (0..n).map(|i| score[i * labels + j]).collect();
            col.sort_by(|a, b| a.total_cmp(b));
            let tau = col[((1.0 - freq) * (n - 1) as f64) as usize];
            for i in 0..n {
                y[i * labels + j] = (score[i * labels + j] > tau) as u8 as f32;
            }
        }
        Dataset {
            x,
            y,
            n,
            features,
            labels,
        }
    }

    /// Each label's frequency.
    pub fn label_prior(&self) -> Vec<f64> {
        let mut p = vec![0.0; self.labels];
        for i in 0..self.n {
            for (j, pj) in p.iter_mut().enumerate() {
                *pj += self.y[i * self.labels + j] as f64;
            }
        }
        p.iter().map(|s| s / self.n as f64).collect()
    }

    /// BCE of the label-prior baseline (every row predicts `prior`) on this set.
    pub fn prior_bce(&self, prior: &[f64]) -> f64 {
        let eps = crate::ops::BCE_EPSILON as f64;
        let mut acc = 0.0;
        for i in 0..self.n {
            for (j, &pj) in prior.iter().enumerate() {
                let q = pj.clamp(eps, 1.0 - eps);
                let t = self.y[i * self.labels + j] as f64;
                acc -= t * q.ln() + (1.0 - t) * (1.0 - q).ln();
            }
        }
        acc / (self.n * self.labels) as f64
    }

    /// Rows `idx` gathered into (x, y) batches.
    pub fn gather(&self, idx: &[usize]) -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(idx.len() * self.features);
        let mut y = Vec::with_capacity(idx.len() * self.labels);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.features..(i + 1) * self.features]);
            y.extend_from_slice(&self.y[i * self.labels..(i + 1) * self.labels]);
        }
        (x, y)
    }

    /// Splits off the last `fraction` of rows as a second dataset.
    pub fn split(&self, fraction: f64) -> (Dataset, Dataset) {
        let n_val = ((self.n as f64) * fraction).round() as usize;
        let n_train = self.n - n_val;
        let part = |lo: usize, hi: usize| Dataset {
            x: self.x[lo * self.features..hi * self.features].to_vec(),
            y: self.y[lo * self.labels..hi * self.labels].to_vec(),
            n: hi - lo,
            features: self.features,
            labels: self.labels,
        };
        (part(0, n_train), part(n_train, self.n))
    }
}
