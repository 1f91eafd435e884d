//! Multi-label metrics, computed on the host in f64 from probabilities and
//! 0/1 targets (row-major [samples, genres]).
//!
//! Binary accuracy alone says little here: predicting "no genre" everywhere
//! already scores ~0.91 on the real posters. So every report pairs the
//! model's figures with the **label-prior baseline**: every poster gets each
//! genre's training frequency as its probability.

use serde::{Deserialize, Serialize};

/// The six figures reported for validation and evaluation. The JSON field
/// names are a stable interface (`postergrad evaluate --json`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean binary cross-entropy, predictions clipped to [1e-7, 1 − 1e-7] (Keras).
    pub bce: f64,
    /// Share of (sample, genre) pairs where [p ≥ 0.5] equals the target.
    pub binary_accuracy: f64,
    /// Macro mean average precision over genres that have a positive.
    pub map: f64,
    /// Micro-averaged F1 at threshold 0.5: 2TP / (2TP + FP + FN).
    pub micro_f1: f64,
    /// Share of each sample's 3 top-scored genres that are true.
    pub precision_at_3: f64,
    /// Share of all true genres found among their sample's 3 top-scored
    /// ones: the poster sources' "top-3 accuracy" (ResNet-50's 60.2 %).
    /// (Absent from files written before it existed: read as 0.)
    #[serde(default)]
    pub recall_at_3: f64,
}

impl Metrics {
    /// All five figures for probabilities `p` and targets `y`, both
    /// [n, genres]. `n = 0` gives zeros.
    pub fn compute(p: &[f32], y: &[f32], genres: usize) -> Metrics {
        assert_eq!(
            p.len(),
            y.len(),
            "probabilities and targets differ in length"
        );
        let n = p.len() / genres.max(1);
        if n == 0 {
            return Metrics::default();
        }
        let eps = 1e-7;
        let (mut bce, mut correct, mut tp, mut fp, mut fneg) =
            (0.0, 0usize, 0usize, 0usize, 0usize);
        for (&pi, &yi) in p.iter().zip(y) {
            let q = (pi as f64).clamp(eps, 1.0 - eps);
            let t = yi as f64;
            bce -= t * q.ln() + (1.0 - t) * (1.0 - q).ln();
            let predicted = pi >= 0.5;
            let truth = yi > 0.5;
            correct += (predicted == truth) as usize;
            tp += (predicted && truth) as usize;
            fp += (predicted && !truth) as usize;
            fneg += (!predicted && truth) as usize;
        }
        let micro_f1 = if tp + fp + fneg == 0 {
            0.0
        } else {
            2.0 * tp as f64 / (2 * tp + fp + fneg) as f64
        };
        Metrics {
            bce: bce / p.len() as f64,
            binary_accuracy: correct as f64 / p.len() as f64,
            map: mean_average_precision(p, y, genres),
            micro_f1,
            precision_at_3: precision_at_k(p, y, genres, 3),
            recall_at_3: recall_at_k(p, y, genres, 3),
        }
    }

    /// The label-prior baseline's figures on targets `y`: every row predicts `prior`.
    pub fn baseline(prior: &[f64], y: &[f32]) -> Metrics {
        let genres = prior.len();
        let n = y.len() / genres.max(1);
        let p: Vec<f32> = (0..n)
            .flat_map(|_| prior.iter().map(|&q| q as f32))
            .collect();
        Metrics::compute(&p, y, genres)
    }
}

/// Average precision of one genre, as scikit-learn defines it: with the
/// samples sorted by score (tied scores form one threshold),
/// AP = Σₖ (Rₖ − Rₖ₋₁) · Pₖ over the thresholds k. None without positives.
pub fn average_precision(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let positives = truth.iter().filter(|&&t| t).count();
    if positives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut last_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        // One threshold: every sample tied with order[i].
        let s = scores[order[i]];
        // total_cmp, not ==: a NaN score is one threshold too (NaN == NaN
        // is false and would never advance).
        while i < order.len() && scores[order[i]].total_cmp(&s).is_eq() {
            tp += truth[order[i]] as usize;
            seen += 1;
            i += 1;
        }
        let recall = tp as f64 / positives as f64;
        ap += (recall - last_recall) * (tp as f64 / seen as f64);
        last_recall = recall;
    }
    Some(ap)
}

/// Macro mean of [`average_precision`] over the genres with a positive.
pub fn mean_average_precision(p: &[f32], y: &[f32], genres: usize) -> f64 {
    let n = p.len() / genres;
    let aps: Vec<f64> = (0..genres)
        .filter_map(|g| {
            let scores: Vec<f32> = (0..n).map(|i| p[i * genres + g]).collect();
            let truth: Vec<bool> = (0..n).map(|i| y[i * genres + g] > 0.5).collect();
            average_precision(&scores, &truth)
        })
        .collect();
    if aps.is_empty() {
        0.0
    } else {
        aps.iter().sum::<f64>() / aps.len() as f64
    }
}

/// The `k` highest-scored genres of one row (ties: the earlier genre first).
pub fn top_k(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Mean over rows of (true genres among the row's top `k`) / k.
pub fn precision_at_k(p: &[f32], y: &[f32], genres: usize, k: usize) -> f64 {
    let n = p.len() / genres;
    let k = k.min(genres);
    if n == 0 || k == 0 {
        return 0.0;
    }
    let hits: usize = (0..n)
        .map(|i| {
            let row = &p[i * genres..(i + 1) * genres];
            top_k(row, k)
                .into_iter()
                .filter(|&g| y[i * genres + g] > 0.5)
                .count()
        })
        .sum();
    hits as f64 / (n * k) as f64
}

/// (True genres found among each row's top `k`) / (all true genres), over
/// every row; 0 when no row has a true genre.
pub fn recall_at_k(p: &[f32], y: &[f32], genres: usize, k: usize) -> f64 {
    let n = p.len() / genres.max(1);
    let positives = y.iter().filter(|&&t| t > 0.5).count();
    if n == 0 || positives == 0 {
        return 0.0;
    }
    let hits: usize = (0..n)
        .map(|i| {
            let row = &p[i * genres..(i + 1) * genres];
            top_k(row, k.min(genres))
                .into_iter()
                .filter(|&g| y[i * genres + g] > 0.5)
                .count()
        })
        .sum();
    hits as f64 / positives as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn average_precision_matches_scikit_learn() {
        // sklearn.metrics.average_precision_score([0,0,1,1], [0.1,0.4,0.35,0.8]) = 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert_abs_diff_eq!(ap, 5.0 / 6.0, epsilon = 1e-12);
        // All scores tied: AP is the positive rate.
        let ap = average_precision(&[0.3; 5], &[true, false, false, true, false]).unwrap();
        // A diverged model's NaN scores form one tied threshold (this looped forever once).
        let nan = average_precision(&[f32::NAN; 4], &[true, false, false, true]).unwrap();
        assert_eq!(nan, 0.5);
        assert_abs_diff_eq!(ap, 0.4, epsilon = 1e-12);
        assert_eq!(average_precision(&[0.3, 0.2], &[false, false]), None);
    }

    #[test]
    fn metrics_of_a_small_case_by_hand() {
        // 2 samples × 3 genres.
        let p = [0.9, 0.2, 0.6, 0.1, 0.7, 0.4];
        let y = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0];
        let m = Metrics::compute(&p, &y, 3);
        // predictions ≥ .5: [1,0,1], [0,1,0] → correct 2 + 2 = 4 of 6; TP 2, FP 1, FN 1.
        assert_abs_diff_eq!(m.binary_accuracy, 4.0 / 6.0, epsilon = 1e-12);
        assert_abs_diff_eq!(m.micro_f1, 4.0 / 6.0, epsilon = 1e-12);
        let bce = -((0.9f64).ln()
            + (0.8f64).ln()
            + (0.4f64).ln()
            + (0.9f64).ln()
            + (0.7f64).ln()
            + (0.4f64).ln())
            / 6.0;
        assert_abs_diff_eq!(m.bce, bce, epsilon = 1e-6);
        // genre 0: AP 1; genre 1: AP 1; genre 2: positive ranked 2nd of 2 → 0.5.
        assert_abs_diff_eq!(m.map, 2.5 / 3.0, epsilon = 1e-12);
        // top-3 of 3 genres covers everything: 3 true of 6.
        assert_abs_diff_eq!(m.precision_at_3, 0.5, epsilon = 1e-12);
        assert_abs_diff_eq!(precision_at_k(&p, &y, 3, 1), 1.0, epsilon = 1e-12);
        // top-3 of 3 genres finds every true genre; top-1 finds genre 0 of
        // row 0 and genre 1 of row 1: 2 of the 3 true genres
        assert_abs_diff_eq!(m.recall_at_3, 1.0, epsilon = 1e-12);
        assert_abs_diff_eq!(recall_at_k(&p, &y, 3, 1), 2.0 / 3.0, epsilon = 1e-12);
        // 5 genres, top 3: row 0 has 2 true genres, one of them in its top 3
        let p = [0.9, 0.8, 0.7, 0.6, 0.1];
        let y = [0.0, 1.0, 0.0, 0.0, 1.0];
        assert_abs_diff_eq!(recall_at_k(&p, &y, 5, 3), 0.5, epsilon = 1e-12);
        assert_eq!(recall_at_k(&p, &[0.0; 5], 5, 3), 0.0);
    }

    #[test]
    fn the_baseline_ranks_nothing() {
        let y = [1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let m = Metrics::baseline(&[0.75, 0.5], &y);
        // constant scores: AP = positive rate of each genre (3/4 and 2/4).
        assert_abs_diff_eq!(m.map, 0.625, epsilon = 1e-12);
        assert_abs_diff_eq!(m.binary_accuracy, (3.0 + 2.0) / 8.0, epsilon = 1e-12);
    }
}
