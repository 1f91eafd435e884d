//! Structural checks of a JPEG or PNG file, before any pixel is decoded.
//!
//! Decoders are forgiving: the JPEG decoder that `image` uses fills the
//! rows of a file cut short with grey and reports nothing, so a truncated
//! poster would be trained on. These checks walk the file's own structure
//! (JPEG markers and segments, PNG chunks and their CRCs) and call a file
//! damaged when it ends early, lacks its end marker, misses scans, or holds
//! a marker where image data should be. They read every byte once and
//! allocate nothing sized by the file's headers.

/// What the structure says about an intact file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
        }
    }
}

/// Checks `bytes` as a JPEG or PNG file. `Ok(None)` when it is neither
/// (the caller names the format); `Err` says what is damaged, in words that
/// follow "a damaged or truncated JPEG file (…)".
pub fn check(bytes: &[u8]) -> Result<Option<Header>, String> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        check_jpeg(bytes).map(Some)
    } else if bytes.starts_with(PNG_SIGNATURE) {
        check_png(bytes).map(Some)
    } else {
        Ok(None)
    }
}

fn be16(b: &[u8], at: usize) -> usize {
    (b[at] as usize) << 8 | b[at + 1] as usize
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A JPEG frame: its size, component ids, and whether it is progressive.
struct Frame {
    width: u32,
    height: u32,
    components: Vec<u8>,
    progressive: bool,
}

/// Walks the markers from SOI to EOI. Every segment must fit the file;
/// every scan's entropy-coded data must end at a marker (not at the end of
/// the file), and that marker must be a real one (a restart marker, or the
/// next segment), not a byte pattern no encoder writes there.
fn check_jpeg(b: &[u8]) -> Result<Header, String> {
    let n = b.len();
    let mut frame: Option<Frame> = None;
    // Per component: which of the 64 coefficients some scan delivered at
    // full precision (successive approximation's last bit, Al = 0).
    let mut coverage: Vec<(u8, u64)> = Vec::new();
    let mut scans = 0;
    let mut i = 2;
    loop {
        if i >= n {
            return Err(format!(
                "it ends at byte {n} without its end-of-image marker"
            ));
        }
        if b[i] != 0xFF {
            return Err(format!(
                "byte {i} should start a marker but is {:#04x}",
                b[i]
            ));
        }
        while i < n && b[i] == 0xFF {
            i += 1; // fill bytes before a marker
        }
        if i >= n {
            return Err(format!("it ends at byte {n} inside a marker"));
        }
        let marker = b[i];
        i += 1;
        match marker {
            0xD9 => break,
            0xD0..=0xD7 | 0x01 => continue,
            0x00 | 0xD8 => {
                return Err(format!("a stray marker {marker:#04x} at byte {}", i - 2));
            }
            _ => {}
        }
        if i + 2 > n {
            return Err(format!("it ends at byte {n} inside a segment header"));
        }
        let len = be16(b, i);
        if len < 2 || i + len > n {
            return Err(format!(
                "a segment at byte {} claims {len} bytes but the file ends at byte {n}",
                i - 2
            ));
        }
        let seg = &b[i + 2..i + len];
        match marker {
            // SOF0-3, 5-7, 9-11, 13-15: the frame header.
            0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                let f = frame_header(seg, marker)?;
                coverage = f.components.iter().map(|&id| (id, 0)).collect();
                frame = Some(f);
            }
            0xDA => {
                if frame.is_none() {
                    return Err("a scan before the frame header".into());
                }
                scan_header(seg, i - 2, &mut coverage)?;
                scans += 1;
                i = scan_data_end(b, i + len, scans)?;
                continue;
            }
            _ => {}
        }
        i += len;
    }
    let Some(frame) = frame else {
        return Err("no frame header (no image size)".into());
    };
    if scans == 0 {
        return Err("no image data (no scan)".into());
    }
    // Sequential files need each component in some scan (all 64
    // coefficients at once); progressive ones every coefficient of each.
    let full = if frame.progressive { u64::MAX } else { 1 };
    for (id, got) in &coverage {
        if got & full != full {
            return Err(format!(
                "missing scans: component {id} of {} lacks {} of its 64 coefficients",
                frame.components.len(),
                if frame.progressive {
                    (!got).count_ones()
                } else {
                    64
                }
            ));
        }
    }
    Ok(Header {
        format: Format::Jpeg,
        width: frame.width,
        height: frame.height,
    })
}

/// A frame header (SOFn) segment's size and components.
fn frame_header(seg: &[u8], marker: u8) -> Result<Frame, String> {
    if seg.len() < 6 {
        return Err("a frame header too short to hold the image size".into());
    }
    let count = seg[5] as usize;
    if count == 0 || seg.len() < 6 + 3 * count {
        return Err(format!(
            "a frame header that lists {count} components but does not hold them"
        ));
    }
    let (height, width) = (be16(seg, 1) as u32, be16(seg, 3) as u32);
    if width == 0 || height == 0 {
        return Err(format!("a frame header of {width}×{height} pixels"));
    }
    Ok(Frame {
        width,
        height,
        components: (0..count).map(|c| seg[6 + 3 * c]).collect(),
        progressive: matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE),
    })
}

/// A scan header (SOS) segment at byte `at`: marks the coefficients it
/// delivers at full precision (successive approximation's Al = 0) for each
/// of its components.
fn scan_header(seg: &[u8], at: usize, coverage: &mut [(u8, u64)]) -> Result<(), String> {
    let count = seg.first().copied().unwrap_or(0) as usize;
    if count == 0 || seg.len() < 1 + 2 * count + 3 {
        return Err(format!(
            "a scan header at byte {at} too short for its components"
        ));
    }
    let (ss, se, al) = (
        seg[1 + 2 * count],
        seg[2 + 2 * count],
        seg[3 + 2 * count] & 0x0F,
    );
    if ss > 63 || se > 63 || ss > se {
        return Err(format!("a scan of coefficients {ss}..{se}"));
    }
    let band: u64 = (ss..=se).fold(0, |m, k| m | 1 << k);
    for c in 0..count {
        let id = seg[1 + 2 * c];
        let Some(slot) = coverage.iter_mut().find(|(cid, _)| *cid == id) else {
            return Err(format!(
                "a scan of component {id}, which the frame does not have"
            ));
        };
        if al == 0 {
            slot.1 |= band;
        }
    }
    Ok(())
}

/// Where the entropy-coded data that starts at `from` ends: at the next
/// real marker (0xFF 0x00 is a stuffed 0xFF, 0xFF 0xD0-D7 a restart
/// marker); the end of the file first, or a marker no encoder writes
/// there, is damage.
fn scan_data_end(b: &[u8], from: usize, scan: usize) -> Result<usize, String> {
    let n = b.len();
    let mut j = from;
    loop {
        if j >= n {
            return Err(format!(
                "it ends at byte {n} inside its image data (scan {scan}), \
                 before the end-of-image marker"
            ));
        }
        if b[j] != 0xFF {
            j += 1;
            continue;
        }
        if j + 1 >= n {
            return Err(format!("it ends at byte {n} inside its image data"));
        }
        match b[j + 1] {
            0x00 | 0xD0..=0xD7 => j += 2,
            0xFF => j += 1,
            // Scan data ends at EOI, a new table, or another scan.
            0xD9 | 0xC4 | 0xCC | 0xDA..=0xDF | 0xE0..=0xEF | 0xFE => return Ok(j),
            other => {
                return Err(format!(
                    "a marker {other:#04x} at byte {j} inside its image data"
                ))
            }
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// Walks the chunks: IHDR first, each chunk whole and its CRC right, some
/// IDAT, and IEND last.
fn check_png(b: &[u8]) -> Result<Header, String> {
    let n = b.len();
    let mut i = PNG_SIGNATURE.len();
    let mut size = None;
    let mut idat = false;
    loop {
        if i + 8 > n {
            return Err(format!("it ends at byte {n} without its IEND chunk"));
        }
        let len = be32(b, i) as usize;
        let kind = &b[i + 4..i + 8];
        let name = String::from_utf8_lossy(kind).to_string();
        if len > n || i + 12 + len > n {
            return Err(format!(
                "chunk {name} at byte {i} claims {len} bytes but the file ends at byte {n}"
            ));
        }
        let data = &b[i + 8..i + 8 + len];
        let stored = be32(b, i + 8 + len);
        if crc32(&b[i + 4..i + 8 + len]) != stored {
            return Err(format!("chunk {name} at byte {i} fails its checksum"));
        }
        if size.is_none() && kind != b"IHDR" {
            return Err(format!("the first chunk is {name}, not IHDR"));
        }
        match kind {
            b"IHDR" => {
                if len < 8 {
                    return Err("an IHDR chunk too short to hold the image size".into());
                }
                let (w, h) = (be32(data, 0), be32(data, 4));
                if w == 0 || h == 0 {
                    return Err(format!("an IHDR of {w}×{h} pixels"));
                }
                size = Some((w, h));
            }
            b"IDAT" => idat = true,
            b"IEND" => break,
            _ => {}
        }
        i += 12 + len;
    }
    if !idat {
        return Err("no image data (no IDAT chunk)".into());
    }
    let (width, height) = size.expect("IHDR checked first");
    Ok(Header {
        format: Format::Png,
        width,
        height,
    })
}

/// CRC-32 (ISO-HDLC), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (n, slot) in t.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        t
    });
    !bytes.iter().fold(!0u32, |c, &x| {
        table[((c ^ x as u32) & 0xFF) as usize] ^ (c >> 8)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn other_formats_are_not_judged() {
        assert_eq!(check(b"GIF89a...."), Ok(None));
        assert_eq!(check(b""), Ok(None));
    }
}
