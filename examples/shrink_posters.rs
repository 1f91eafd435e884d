//! A smaller copy of a poster directory: every image resized to SIZE×SIZE
//! (the same bilinear squash the loader applies) and saved as JPEG, with
//! train.csv copied. Decoding the copy is much faster than the ~300×445
//! originals, and the copy is small enough to ship to a remote GPU machine.
//! Results on a copy differ from the originals only by the second JPEG
//! compression.
//!
//!     cargo run --release --example shrink_posters -- ../shared/posters /tmp/posters128 128 [quality]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        return Err("usage: shrink_posters SRC_DIR DST_DIR SIZE [JPEG_QUALITY]".into());
    }
    let (src, dst) = (PathBuf::from(&args[0]), PathBuf::from(&args[1]));
    let size: usize = args[2].parse()?;
    let quality: u8 = args.get(3).map(|q| q.parse()).transpose()?.unwrap_or(90);
    let set = postergrad::posters::PosterSet::open(&src)?;
    std::fs::create_dir_all(dst.join("Images"))?;
    std::fs::copy(src.join("train.csv"), dst.join("train.csv"))?;
    let (mut done, mut failed) = (0, 0);
    for (i, poster) in set.posters.iter().enumerate() {
        match set.load_image(i, size) {
            Ok(pixels) => {
                let out =
                    std::fs::File::create(dst.join("Images").join(format!("{}.jpg", poster.id)))?;
                let mut enc = image::codecs::jpeg::JpegEncoder::new_with_quality(out, quality);
                enc.encode(
                    &pixels,
                    size as u32,
                    size as u32,
                    image::ExtendedColorType::Rgb8,
                )?;
                done += 1;
            }
            Err(e) => {
                eprintln!("skipped: {e}");
                failed += 1;
            }
        }
    }
    println!(
        "{done} posters written to {} ({failed} skipped)",
        dst.display()
    );
    Ok(())
}
