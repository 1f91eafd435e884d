//! The poster dataset: a directory in the Keras tutorial's layout
//! (`train.csv` + `Images/<Id>.jpg`), or the embedded synthetic posters the
//! default run trains on.
//!
//! `train.csv` has a column `Id`, usually a column `Genre` (a quoted list, not
//! used: the 0/1 columns are the truth), then one 0/1 column per genre; genre
//! names come from the header. Images are decoded with the `image` crate,
//! converted to RGB, resized (bilinear, aspect ratio not kept — the tutorial
//! squashes posters too) to `size`×`size` and kept as u8 until a batch is
//! built, where pixels become f32 in [0, 1], NCHW.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::rng::Rng;

pub use crate::images::{append_chw, check_image_file, load_image_file, MAX_DECODED_BYTES};

/// One labelled poster.
#[derive(Clone, Debug, PartialEq)]
pub struct Poster {
    pub id: String,
    /// 0/1 per genre, in the order of [`PosterSet::genres`].
    pub labels: Vec<f32>,
    /// The CSV line it came from (1-based, header = line 1); 0 for synthetic posters.
    pub line: u64,
}

/// Where the pixels come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// `train.csv` and `Images/` under this directory.
    Dir(PathBuf),
    /// Posters drawn in code from (seed, index): see [`SyntheticConfig`].
    Synthetic(SyntheticConfig),
}

/// The embedded default dataset: posters drawn in code. Each genre is a
/// visual motif (a disc, a ring, horizontal bars, ...) in a characteristic
/// hue band, drawn at a random place and scale over a random gradient with
/// pixel noise; a poster shows the motifs of its genres and nothing else, so
/// the genres can only be read from the pixels. Genre frequencies are skewed
/// like the real ones (45 % down to 8 %), ~1.9 genres per poster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyntheticConfig {
    pub count: usize,
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            count: 1200,
            seed: 0,
        }
    }
}

/// The synthetic genres (motifs), their frequencies and base hues (degrees).
pub const SYNTHETIC_GENRES: [(&str, f64, f64); 8] = [
    ("disc", 0.45, 20.0),
    ("ring", 0.35, 200.0),
    ("bars", 0.30, 120.0),
    ("columns", 0.25, 50.0),
    ("checker", 0.20, 280.0),
    ("cross", 0.15, 0.0),
    ("frame", 0.12, 160.0),
    ("diagonal", 0.08, 320.0),
];

/// A labelled set of posters.
#[derive(Clone, Debug)]
pub struct PosterSet {
    pub source: Source,
    pub genres: Vec<String>,
    pub posters: Vec<Poster>,
    /// Things worth telling the user that are not errors (duplicate rows).
    pub warnings: Vec<String>,
}

/// `dir`/train.csv opened, or an error saying what the directory lacks.
fn open_csv(dir: &Path, csv_path: &Path) -> Result<std::fs::File> {
    let csv_path = csv_path.to_path_buf();
    if !dir.is_dir() {
        return Err(csv_error(
            dir,
            None,
            "is not a directory; --data wants a directory holding train.csv and Images/".into(),
        ));
    }
    let file = std::fs::File::open(&csv_path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            csv_error(
                &csv_path,
                None,
                "not found; --data wants the tutorial's layout: train.csv (Id, Genre, one \
                 0/1 column per genre) and Images/<Id>.jpg"
                    .into(),
            )
        } else {
            Error::Io {
                path: csv_path.display().to_string(),
                error: source,
            }
        }
    })?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(csv_error(
            &csv_path,
            None,
            "is empty; it needs a header line `Id,Genre,<genre>,<genre>,…` and one row per \
             poster"
                .into(),
        ));
    }
    Ok(file)
}

/// One CSV row's Id and 0/1 labels (the column count is already checked).
fn parse_row(
    csv_path: &Path,
    line: u64,
    record: &csv::StringRecord,
    id_col: usize,
    genre_cols: &[usize],
    genres: &[String],
) -> Result<(String, Vec<f32>)> {
    let id = record[id_col].trim().to_string();
    if id.is_empty() {
        return Err(csv_error(csv_path, Some(line), "empty `Id`".into()));
    }
    let mut labels = Vec::with_capacity(genre_cols.len());
    for (&c, genre) in genre_cols.iter().zip(genres) {
        labels.push(match record[c].trim() {
            "0" | "0.0" => 0.0,
            "1" | "1.0" => 1.0,
            other => {
                return Err(csv_error(
                    csv_path,
                    Some(line),
                    format!("Id {id}: genre `{genre}` is `{other}`, expected 0 or 1"),
                ))
            }
        });
    }
    Ok((id, labels))
}

fn csv_error(file: &Path, line: Option<u64>, message: String) -> Error {
    Error::Data {
        file: file.display().to_string(),
        line,
        message,
    }
}

impl PosterSet {
    /// Reads `dir/train.csv`. Malformed rows are errors naming the line;
    /// identical duplicate Ids are used once (with a warning), duplicates whose
    /// labels disagree are an error naming both lines. Images are not opened
    /// here: see [`PosterSet::missing_images`] and [`PosterSet::load_image`].
    pub fn open(dir: &Path) -> Result<PosterSet> {
        let csv_path = dir.join("train.csv");
        let file = open_csv(dir, &csv_path)?;
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(std::io::BufReader::new(file));
        let header = reader
            .headers()
            .map_err(|e| csv_error(&csv_path, Some(1), format!("unreadable header: {e}")))?
            .clone();
        let names: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
        let id_col = names.iter().position(|h| h == "Id").ok_or_else(|| {
            csv_error(
                &csv_path,
                Some(1),
                format!(
                    "the header has no `Id` column (columns: {})",
                    names.join(", ")
                ),
            )
        })?;
        let genre_cols: Vec<usize> = (0..names.len())
            .filter(|&c| c != id_col && names[c] != "Genre")
            .collect();
        if genre_cols.is_empty() {
            return Err(csv_error(
                &csv_path,
                Some(1),
                "the header names no genre columns (expected `Id`, `Genre`, then one 0/1 column per genre)"
                    .into(),
            ));
        }
        let genres: Vec<String> = genre_cols.iter().map(|&c| names[c].clone()).collect();
        let mut posters: Vec<Poster> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut warnings = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map(|p| p.line());
                csv_error(&csv_path, line, format!("unreadable row: {e}"))
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.len() != names.len() {
                return Err(csv_error(
                    &csv_path,
                    Some(line),
                    format!(
                        "{} columns, but the header has {} (is a `Genre` list missing its quotes?)",
                        record.len(),
                        names.len()
                    ),
                ));
            }
            let (id, labels) = parse_row(&csv_path, line, &record, id_col, &genre_cols, &genres)?;
            if let Some(&first) = seen.get(&id) {
                let earlier = &posters[first];
                if earlier.labels != labels {
                    return Err(csv_error(
                        &csv_path,
                        Some(line),
                        format!(
                            "Id {id} appears on lines {} and {line} with different labels; keep one of them",
                            earlier.line
                        ),
                    ));
                }
                warnings.push(format!(
                    "{}: Id {id} appears on lines {} and {line} with identical labels; using it once",
                    csv_path.display(),
                    earlier.line
                ));
                continue;
            }
            seen.insert(id.clone(), posters.len());
            posters.push(Poster { id, labels, line });
        }
        if posters.is_empty() {
            return Err(csv_error(&csv_path, None, "has no rows".into()));
        }
        Ok(PosterSet {
            source: Source::Dir(dir.to_path_buf()),
            genres,
            posters,
            warnings,
        })
    }

    /// The embedded synthetic posters (labels drawn now, pixels on demand).
    pub fn synthetic(config: SyntheticConfig) -> PosterSet {
        let posters = (0..config.count)
            .map(|i| Poster {
                id: format!("synthetic-{i:05}"),
                labels: synthetic_labels(config.seed, i),
                line: 0,
            })
            .collect();
        PosterSet {
            source: Source::Synthetic(config),
            genres: SYNTHETIC_GENRES.iter().map(|g| g.0.to_string()).collect(),
            posters,
            warnings: vec![],
        }
    }

    /// A one-line description ("../shared/posters (6,515 posters, 25 genres)").
    pub fn describe(&self) -> String {
        let what = match &self.source {
            Source::Dir(d) => d.display().to_string(),
            Source::Synthetic(c) => format!("embedded synthetic posters (seed {})", c.seed),
        };
        format!(
            "{what} ({} posters, {} genres)",
            self.posters.len(),
            self.genres.len()
        )
    }

    /// The file poster `i` is read from (None for synthetic posters).
    pub fn image_path(&self, i: usize) -> Option<PathBuf> {
        match &self.source {
            Source::Dir(d) => Some(d.join("Images").join(format!("{}.jpg", self.posters[i].id))),
            Source::Synthetic(_) => None,
        }
    }

    /// Indices of posters whose image file does not exist.
    pub fn missing_images(&self) -> Vec<usize> {
        (0..self.posters.len())
            .filter(|&i| self.image_path(i).is_some_and(|p| !p.is_file()))
            .collect()
    }

    /// Poster `i` as `size`×`size` RGB u8, row-major HWC.
    pub fn load_image(&self, i: usize, size: usize) -> Result<Vec<u8>> {
        match &self.source {
            Source::Synthetic(c) => Ok(synthetic_image(c.seed, i, size)),
            Source::Dir(_) => {
                let path = self.image_path(i).expect("directory source");
                load_image_file(&path, size).map_err(|message| Error::Image {
                    id: self.posters[i].id.clone(),
                    path: path.display().to_string(),
                    message,
                })
            }
        }
    }

    /// Each genre's frequency over the posters `rows`.
    pub fn label_prior(&self, rows: &[usize]) -> Vec<f64> {
        let mut p = vec![0.0; self.genres.len()];
        for &i in rows {
            for (pj, &y) in p.iter_mut().zip(&self.posters[i].labels) {
                *pj += y as f64;
            }
        }
        p.iter().map(|s| s / rows.len().max(1) as f64).collect()
    }

    /// A seeded shuffle of all posters, cut to the first `limit`, split into
    /// (train, validation) with the last `val_split` share as validation.
    pub fn split(
        &self,
        seed: u64,
        limit: Option<usize>,
        val_split: f64,
    ) -> Result<(Vec<usize>, Vec<usize>)> {
        if !(val_split > 0.0 && val_split < 1.0) {
            return Err(Error::Config {
                what: "--val-split".into(),
                message: format!(
                    "must be between 0 and 1 (the share of posters held out), got {val_split}"
                ),
            });
        }
        let mut order: Vec<usize> = (0..self.posters.len()).collect();
        Rng::new(seed ^ 0x5EED_DA7A).shuffle(&mut order);
        if let Some(n) = limit {
            if n == 0 {
                return Err(Error::Config {
                    what: "--limit".into(),
                    message: "must be at least 1".into(),
                });
            }
            if n > order.len() {
                return Err(Error::Config {
                    what: format!("--limit {n}"),
                    message: format!(
                        "exceeds the {} posters of {}; leave --limit out to use them all",
                        order.len(),
                        self.describe()
                    ),
                });
            }
            order.truncate(n);
        }
        let n_val = (((order.len() as f64) * val_split).round() as usize).max(1);
        if n_val >= order.len() {
            return Err(Error::Config {
                what: "--val-split".into(),
                message: format!(
                    "leaves no training posters out of {} (use a smaller --val-split or a larger --limit)",
                    order.len()
                ),
            });
        }
        let n_train = order.len() - n_val;
        let val = order.split_off(n_train);
        Ok((order, val))
    }
}

fn synthetic_rng(seed: u64, index: usize) -> Rng {
    Rng::new(seed.wrapping_mul(0x1000_0001) ^ (index as u64).wrapping_mul(0x9E37_79B9))
}

/// Poster (seed, index)'s genres: the first draws of its generator.
fn synthetic_labels(seed: u64, index: usize) -> Vec<f32> {
    draw_labels(&mut synthetic_rng(seed, index))
}

fn draw_labels(rng: &mut Rng) -> Vec<f32> {
    SYNTHETIC_GENRES
        .iter()
        .map(|&(_, freq, _)| (rng.uniform() < freq) as u8 as f32)
        .collect()
}

fn hsv(h: f64, s: f64, v: f64) -> [f64; 3] {
    let h = h.rem_euclid(360.0) / 60.0;
    let c = v * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    [r + m, g + m, b + m]
}

/// Whether motif `genre`, centred at (cx, cy) with half-size r, covers the
/// point (u, v) (all in units of the poster's width).
fn motif_covers(genre: usize, u: f64, v: f64, cx: f64, cy: f64, r: f64) -> bool {
    let (dx, dy) = (u - cx, v - cy);
    let inside = dx.abs() < r && dy.abs() < r;
    let d = (dx * dx + dy * dy).sqrt();
    let band = r / 3.0;
    match genre {
        0 => d < r,                                                                    // disc
        1 => d < r && d > 0.55 * r,                                                    // ring
        2 => inside && ((dy + r) / band) as i64 % 2 == 0, // horizontal bars
        3 => inside && ((dx + r) / band) as i64 % 2 == 0, // vertical columns
        4 => inside && (((dx + r) / band) as i64 + ((dy + r) / band) as i64) % 2 == 0, // checker
        5 => inside && (dx.abs() < 0.3 * r || dy.abs() < 0.3 * r), // cross
        6 => u.min(v).min(1.0 - u).min(1.0 - v) < 0.07,   // frame around the poster
        _ => inside && (((dx + dy + 2.0 * r) / band) as i64) % 2 == 0, // diagonal stripes
    }
}

/// Draws synthetic poster `index` at `size`×`size` (HWC u8).
fn synthetic_image(seed: u64, index: usize, size: usize) -> Vec<u8> {
    let mut rng = synthetic_rng(seed, index);
    let labels = draw_labels(&mut rng);
    let top = hsv(
        rng.range(0.0, 360.0),
        rng.range(0.1, 0.4),
        rng.range(0.15, 0.5),
    );
    let bottom = hsv(
        rng.range(0.0, 360.0),
        rng.range(0.1, 0.4),
        rng.range(0.15, 0.5),
    );
    // Motifs in a random drawing order, each with its place, scale and colour.
    let mut motifs: Vec<(usize, f64, f64, f64, [f64; 3])> = Vec::new();
    for (g, &(_, _, hue)) in SYNTHETIC_GENRES.iter().enumerate() {
        let (cx, cy, r) = (
            rng.range(0.25, 0.75),
            rng.range(0.25, 0.75),
            rng.range(0.14, 0.24),
        );
        let colour = hsv(
            hue + rng.range(-25.0, 25.0),
            rng.range(0.6, 1.0),
            rng.range(0.7, 1.0),
        );
        if labels[g] > 0.5 {
            motifs.push((g, cx, cy, r, colour));
        }
    }
    let mut order: Vec<usize> = (0..motifs.len()).collect();
    rng.shuffle(&mut order);
    let mut noise = synthetic_rng(seed ^ 0xA015E, index);
    let mut out = Vec::with_capacity(size * size * 3);
    for y in 0..size {
        for x in 0..size {
            let (u, v) = (
                (x as f64 + 0.5) / size as f64,
                (y as f64 + 0.5) / size as f64,
            );
            let mut px = [0.0; 3];
            for c in 0..3 {
                px[c] = top[c] * (1.0 - v) + bottom[c] * v;
            }
            for &k in &order {
                let (g, cx, cy, r, colour) = motifs[k];
                if motif_covers(g, u, v, cx, cy, r) {
                    px = colour;
                }
            }
            for p in px {
                let n = noise.range(-0.06, 0.06);
                out.push(((p + n).clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_posters_are_deterministic_and_skewed() {
        let set = PosterSet::synthetic(SyntheticConfig {
            count: 4000,
            seed: 3,
        });
        let prior = set.label_prior(&(0..4000).collect::<Vec<_>>());
        for (p, g) in prior.iter().zip(SYNTHETIC_GENRES) {
            assert!((p - g.1).abs() < 0.03, "{} frequency {p} vs {}", g.0, g.1);
        }
        let a = set.load_image(7, 48).unwrap();
        assert_eq!(a.len(), 48 * 48 * 3);
        assert_eq!(a, set.load_image(7, 48).unwrap());
        assert_ne!(a, set.load_image(8, 48).unwrap());
    }

    #[test]
    fn chw_conversion_scales_and_transposes() {
        let hwc = [255u8, 0, 51, 0, 255, 102, 0, 0, 0, 255, 255, 255];
        let mut out = vec![];
        append_chw(&mut out, &hwc, 2);
        assert_eq!(out.len(), 12);
        assert_eq!(&out[0..4], &[1.0, 0.0, 0.0, 1.0]);
        assert!((out[8] - 0.2).abs() < 1e-6 && (out[9] - 0.4).abs() < 1e-6);
    }
}
