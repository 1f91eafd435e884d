//! `learning_curve.png`: training and validation loss per epoch (with the
//! label-prior baseline's loss as a dashed line), and validation mAP and
//! precision@3 beside their baselines — the tutorial's plot, plus the lines
//! that say whether anything was learned. Drawn with `plotters`; the font
//! (DejaVu Sans Mono, see `src/fonts/DejaVu-LICENSE.txt`) is embedded so the
//! plot looks the same on every machine.

use std::path::Path;
use std::sync::Once;

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
    pub seconds: f64,
    pub samples_per_second: f64,
    /// Time the training loop waited for the loader (decoding) this epoch.
    pub loader_wait_seconds: f64,
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("drawing the learning curve: {e}")),
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
    let x_range = 0.5..epochs + 0.5;

    // Loss panel.
    let losses = history
        .iter()
        .flat_map(|r| [r.loss, r.val_loss])
        .chain([baseline.bce])
        .filter(|v| v.is_finite());
    let (lo, hi) = losses.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(1e-3);
    let mut chart = ChartBuilder::on(&left)
        .margin(15)
        .caption("binary cross-entropy", ("sans-serif", 16))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range.clone(), (lo - pad).max(0.0)..hi + pad)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(history.len().clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let series = |f: fn(&EpochRecord) -> f64| -> Vec<(f64, f64)> {
        history.iter().map(|r| (r.epoch as f64, f(r))).collect()
    };
    let flat = |v: f64| vec![(0.5, v), (epochs + 0.5, v)];
    chart
        .draw_series(LineSeries::new(series(|r| r.loss), BLUE.stroke_width(2)).point_size(3))
        .map_err(|e| err(&e))?
        .label("train loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(series(|r| r.val_loss), RED.stroke_width(2)).point_size(3))
        .map_err(|e| err(&e))?
        .label("val loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            flat(baseline.bce),
            6,
            4,
            BLACK.into(),
        ))
        .map_err(|e| err(&e))?
        .label("label-prior baseline (val)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    // Quality panel.
    let mut chart = ChartBuilder::on(&right)
        .margin(15)
        .caption("validation ranking quality", ("sans-serif", 16))
        .x_label_area_size(35)
        .y_label_area_size(55)
        .build_cartesian_2d(x_range, 0.0..1.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .x_labels(history.len().clamp(2, 10))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let green = RGBColor(0, 140, 60);
    let purple = RGBColor(130, 40, 160);
    chart
        .draw_series(LineSeries::new(series(|r| r.val_map), green.stroke_width(2)).point_size(3))
        .map_err(|e| err(&e))?
        .label("val mAP")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            flat(baseline.map),
            6,
            4,
            green.into(),
        ))
        .map_err(|e| err(&e))?
        .label("mAP, label-prior baseline")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], green));
    chart
        .draw_series(
            LineSeries::new(series(|r| r.val_precision_at_3), purple.stroke_width(2)).point_size(3),
        )
        .map_err(|e| err(&e))?
        .label("val precision@3")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], purple.stroke_width(2)));
    chart
        .draw_series(DashedLineSeries::new(
            flat(baseline.precision_at_3),
            6,
            4,
            purple.into(),
        ))
        .map_err(|e| err(&e))?
        .label("precision@3, baseline")
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], purple));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
