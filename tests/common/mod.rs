//! Helpers shared by the test files.

use postergrad::{Gpu, Precision};

/// The f64 device, or None (with a note) where the adapter has no SHADER_F64.
pub fn f64_gpu() -> Option<Gpu> {
    match Gpu::with_precision(Precision::F64) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("skipped: {e}");
            None
        }
    }
}
