//! `learning_curve.png`: training and validation loss per epoch (with the
//! label-prior baseline's loss as a dashed line), and validation mAP,
//! precision@3 and recall@3 beside their baselines — the tutorial's plot, plus the lines
//! that say whether anything was learned. Drawn with `plotters`; the font
//! (DejaVu Sans Mono, see `src/fonts/DejaVu-LICENSE.txt`) is embedded so the
//! plot looks the same on every machine.

use std::path::Path;
use std::sync::Once;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

static FONT: &[u8] = include_bytes!("fonts/DejaVuSansMono.ttf");

/// One epoch's figures, as `history.csv` holds them.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub loss: f64,
    pub binary_accuracy: f64,
    pub val_loss: f64,
    pub val_binary_accuracy: f64,
    pub val_map: f64,
    pub val_micro_f1: f64,
    pub val_precision_at_3: f64,
    /// The sources' "top-3 accuracy" (absent from older histories: 0).
    #[serde(default)]
    pub val_recall_at_3: f64,
    pub seconds: f64,
    pub samples_per_second: f64,
    /// Time the training loop waited for the loader (decoding) this epoch.
    pub loader_wait_seconds: f64,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        error: std::io::Error::other(format!("drawing the learning curve: {e}")),
    }
}

/// Draws the learning curve of `history` against `baseline` into `path` (PNG).
pub fn learning_curve(
    path: &Path,
    title: &str,
    history: &[EpochRecord],
    baseline: &Metrics,
) -> Result<()> {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
    let err = |e: &dyn std::fmt::Display| plot_error(path, e);
    let root = BitMapBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(&e))?;
    let (left, right) = root.split_horizontally(600);
    let epochs = history.len().max(1) as f64;

    // Loss panel.
    let losses = history
        .iter()
        .flat_map(|r| [r.loss, r.val_loss])
        .chain([baseline.bce])
        .filter(|v| v.is_finite());
    let (lo, hi) = losses.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let n = history.len();
    let mut chart = panel(
        &left,
        "binary cross-entropy",
        n,
        (lo - pad).max(0.0)..hi + pad,
    )
    .map_err(|e| err(&e))?;
    let series = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let flat = |v: f64| vec![(0.5, v), (epochs + 0.5, v)];
    solid(&mut chart, series(|r| r.loss), BLUE, "train loss").map_err(|e| err(&e))?;
    solid(&mut chart, series(|r| r.val_loss), RED, "val loss").map_err(|e| err(&e))?;
    dashed(
        &mut chart,
        flat(baseline.bce),
        BLACK,
        "label-prior baseline (val)",
    )
    .map_err(|e| err(&e))?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // Quality panel.
    let mut chart =
        panel(&right, "validation ranking quality", n, 0.0..1.0).map_err(|e| err(&e))?;
    let green = RGBColor(0, 140, 60);
    let purple = RGBColor(130, 40, 160);
    solid(&mut chart, series(|r| r.val_map), green, "val mAP").map_err(|e| err(&e))?;
    dashed(
        &mut chart,
        flat(baseline.map),
        green,
        "mAP, label-prior baseline",
    )
    .map_err(|e| err(&e))?;
    solid(
        &mut chart,
        series(|r| r.val_precision_at_3),
        purple,
        "val precision@3",
    )
    .map_err(|e| err(&e))?;
    dashed(
        &mut chart,
        flat(baseline.precision_at_3),
        purple,
        "precision@3, baseline",
    )
    .map_err(|e| err(&e))?;
    let orange = RGBColor(220, 110, 0);
    solid(
        &mut chart,
        series(|r| r.val_recall_at_3),
        orange,
        "val recall@3",
    )
    .map_err(|e| err(&e))?;
    dashed(
        &mut chart,
        flat(baseline.recall_at_3),
        orange,
        "recall@3, baseline",
    )
    .map_err(|e| err(&e))?;
    // The legend goes where no curve is: the upper half when every value
    // is below 0.5 (real posters: mAP ≈ 0.1–0.2), else the lower right.
    let highest = history
        .iter()
        .flat_map(|r| [r.val_map, r.val_precision_at_3, r.val_recall_at_3])
        .chain([baseline.map, baseline.precision_at_3, baseline.recall_at_3])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    chart
        .configure_series_labels()
        .position(if highest < 0.5 {
            SeriesLabelPosition::UpperRight
        } else {
            SeriesLabelPosition::LowerRight
        })
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type DrawError = DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>;
type DrawResult = std::result::Result<(), DrawError>;

/// One panel: epochs 1..=n on x, `y` on y, a light grid.
fn panel<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    n: usize,
    y: std::ops::Range<f64>,
) -> std::result::Result<Chart<'a, 'b>, DrawError> {
    let mut chart = ChartBuilder::on(area)
        .margin(15)
        .caption(caption, ("sans-serif", 16))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(0.5..n.max(1) as f64 + 0.5, y)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(n.clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE)
        .draw()?;
    Ok(chart)
}

/// A measured series: a solid line with points, and its legend entry.
fn solid(chart: &mut Chart, points: Vec<(f64, f64)>, color: RGBColor, label: &str) -> DrawResult {
    chart
        .draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(3))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    Ok(())
}

/// A baseline: a dashed line across the plot, and its legend entry.
fn dashed(chart: &mut Chart, points: Vec<(f64, f64)>, color: RGBColor, label: &str) -> DrawResult {
    chart
        .draw_series(DashedLineSeries::new(points, 6, 4, color.into()))?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_learning_curve_is_a_png_with_both_panels_drawn() {
        let record = |epoch: usize, loss: f64| EpochRecord {
            epoch,
            loss,
            binary_accuracy: 0.8,
            val_loss: loss + 0.05,
            val_binary_accuracy: 0.8,
            val_map: 0.3 + 0.1 * epoch as f64,
            val_micro_f1: 0.2,
            val_precision_at_3: 0.4,
            val_recall_at_3: 0.5,
            seconds: 1.0,
            samples_per_second: 10.0,
            loader_wait_seconds: 0.0,
        };
        let history: Vec<_> = (1..=3).map(|e| record(e, 0.6 - 0.1 * e as f64)).collect();
        let baseline = Metrics {
            bce: 0.52,
            map: 0.24,
            precision_at_3: 0.36,
            ..Default::default()
        };
        let path = std::env::temp_dir().join(format!("postergrad-plot-{}.png", std::process::id()));
        learning_curve(&path, "test run", &history, &baseline).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(img.dimensions(), (1200, 500));
        let count = |c: [u8; 3], x0: u32, x1: u32| {
            img.enumerate_pixels()
                .filter(|(x, _, p)| (x0..x1).contains(x) && p.0 == c)
                .count()
        };
        // Blue (train loss) and red (val loss) on the left, green (mAP) on the right.
        assert!(count([0, 0, 255], 0, 600) > 200);
        assert!(count([255, 0, 0], 0, 600) > 200);
        assert!(count([0, 140, 60], 600, 1200) > 200);
    }
}
