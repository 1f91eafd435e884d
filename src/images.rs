//! Reading a poster image: JPEG or PNG, checked for damage
//! ([`image_check`](crate::image_check)), decoded (JPEGs in the decoder's
//! strict mode), converted to RGB and resized; and the HWC → CHW layout the
//! model takes.

use std::path::Path;

use crate::image_check::Format;

/// The most memory one poster may take while decoded (before resizing):
/// 256 MiB, e.g. 9,000 × 9,000 RGB at 8 bits. A decoding thread never holds
/// more than this plus the small resized copy.
pub const MAX_DECODED_BYTES: u64 = 256 << 20;

/// Reads one poster (JPEG or PNG; grayscale, RGBA, CMYK and 16-bit images
/// are converted) and resizes it to `size`×`size` RGB, HWC u8. The error
/// says what is wrong with the file and what to do.
pub fn load_image_file(path: &Path, size: usize) -> std::result::Result<Vec<u8>, String> {
    let bytes = read_image_file(path)?;
    with_decoder(&bytes, path, |decoder, header, corrupt| {
        let img = match header.format {
            Format::Jpeg => decode_jpeg_strictly(&bytes)
                .map_err(|e| format!("a damaged JPEG file ({e}); download the poster again"))?,
            Format::Png => image::DynamicImage::from_decoder(decoder).map_err(corrupt)?,
        };
        if (img.width(), img.height()) != (header.width, header.height) {
            return Err(format!(
                "a damaged {} file (its header says {}×{} pixels, it decodes to {}×{}); \
                 download the poster again",
                header.format.name(),
                header.width,
                header.height,
                img.width(),
                img.height()
            ));
        }
        let s = size as u32;
        let img = if (img.width(), img.height()) == (s, s) {
            img
        } else {
            // Resized in the file's own pixel format, then converted: a huge
            // or 16-bit poster is never copied at full size.
            img.resize_exact(s, s, image::imageops::FilterType::Triangle)
        };
        Ok(img.to_rgb8().into_raw())
    })
}

/// Decodes a JPEG with the decoder `image` uses (zune-jpeg) and its colour
/// conversions, but in strict mode: corrupt entropy-coded data is an error
/// where `image` stops decoding and leaves the remaining rows grey.
fn decode_jpeg_strictly(bytes: &[u8]) -> std::result::Result<image::DynamicImage, String> {
    use zune_core::colorspace::ColorSpace as Z;
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder.decode_headers().map_err(|e| format!("{e:?}"))?;
    let (Some(input), Some((w, h))) = (decoder.input_colorspace(), decoder.dimensions()) else {
        return Err("no image size after its headers".into());
    };
    // As `image` does: keep RGB(A) and gray(+alpha), convert the rest to RGB.
    let out = match input {
        Z::RGB | Z::RGBA | Z::Luma | Z::LumaA => input,
        _ => Z::RGB,
    };
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(out));
    let pixels = decoder.decode().map_err(|e| format!("{e:?}"))?;
    let (w, h) = (w as u32, h as u32);
    let got = pixels.len();
    let short = || format!("{got} bytes decoded for {w}×{h} pixels");
    Ok(match out {
        Z::RGBA => image::DynamicImage::ImageRgba8(
            image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?,
        ),
        Z::Luma => image::DynamicImage::ImageLuma8(
            image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?,
        ),
        Z::LumaA => image::DynamicImage::ImageLumaA8(
            image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?,
        ),
        _ => image::DynamicImage::ImageRgb8(
            image::ImageBuffer::from_raw(w, h, pixels).ok_or_else(short)?,
        ),
    })
}

/// Everything [`load_image_file`] checks before decoding pixels: the file
/// exists and is not empty, is a JPEG or PNG whose structure is whole
/// ([`image_check`](crate::image_check)), and decoded would fit
/// [`MAX_DECODED_BYTES`]. Reads the file once, decodes nothing: the scan a
/// run makes of its dataset before it starts.
pub fn check_image_file(path: &Path) -> std::result::Result<(), String> {
    let bytes = read_image_file(path)?;
    with_decoder(&bytes, path, |_, _, _| Ok(()))
}

fn read_image_file(path: &Path) -> std::result::Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_string(),
        _ => format!("unreadable: {e}"),
    })?;
    if bytes.is_empty() {
        return Err("the file is empty (0 bytes); download the poster again".into());
    }
    Ok(bytes)
}

/// The decoder for an image file's bytes once its format, structure and
/// decoded size are known to be fine; `then` gets it with the header and a
/// mapper that words a decoding error.
fn with_decoder<R>(
    bytes: &[u8],
    path: &Path,
    then: impl FnOnce(
        Box<dyn image::ImageDecoder + '_>,
        crate::image_check::Header,
        &dyn Fn(image::ImageError) -> String,
    ) -> std::result::Result<R, String>,
) -> std::result::Result<R, String> {
    use image::{ImageDecoder, ImageReader};
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("unreadable: {e}"))?;
    let Some(format) = reader.format() else {
        return Err(format!(
            "not an image postergrad can read (its first bytes are neither JPEG nor PNG: {:02x?}); \
             convert it to JPEG or PNG",
            &bytes[..bytes.len().min(4)]
        ));
    };
    let name = match format {
        image::ImageFormat::Jpeg => "JPEG",
        image::ImageFormat::Png => "PNG",
        other => {
            return Err(format!(
                "a {other:?} image; postergrad reads JPEG and PNG: convert it"
            ))
        }
    };
    let damaged = |why: String| {
        format!("a damaged or truncated {name} file ({why}); download the poster again")
    };
    let corrupt = |e: image::ImageError| damaged(e.to_string().trim().to_string());
    // The structure walk names the damage more exactly than the decoder's
    // header parser, but a huge poster is named as huge even when cut.
    let structure = crate::image_check::check(bytes);
    let decoder = reader.into_decoder();
    if let Ok(d) = &decoder {
        let (w, h) = d.dimensions();
        let decoded = d.total_bytes();
        if decoded > MAX_DECODED_BYTES {
            return Err(format!(
                "{w}×{h} pixels would take {} MB decoded, more than the {} MB a poster may use; \
                 shrink it first (e.g. `convert {} -resize 2000x2000 small.jpg`)",
                decoded >> 20,
                MAX_DECODED_BYTES >> 20,
                path.display()
            ));
        }
    }
    let header = match structure {
        Ok(Some(h)) => h,
        Ok(None) => return Err(damaged("its signature is cut short".into())),
        Err(why) => return Err(damaged(why)),
    };
    let decoder = decoder.map_err(corrupt)?;
    then(Box::new(decoder), header, &corrupt)
}

/// HWC u8 → CHW f32 in [0, 1], appended to `out`.
pub fn append_chw(out: &mut Vec<f32>, hwc: &[u8], size: usize) {
    let plane = size * size;
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    for (p, px) in hwc.chunks_exact(3).enumerate() {
        for c in 0..3 {
            dst[c * plane + p] = px[c] as f32 * (1.0 / 255.0);
        }
    }
}
