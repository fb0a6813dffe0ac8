//! Fuzz target: the image intake on arbitrary bytes. It must never panic, must refuse with a
//! typed reason or return an image within the limits, and must not allocate beyond them
//! (run with `-rss_limit_mb` in `scripts/fuzz.sh`: a decode of a header-claimed giant would
//! blow it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use yollayah_core::images::{ImageLimits, prepare};

fuzz_target!(|data: &[u8]| {
    // Small limits keep each run fast and make the pixel cap reachable by small inputs.
    let limits = ImageLimits {
        max_file_bytes: 1 << 20,
        max_pixels: 4_000_000,
        longest_side: 256,
        max_images: 4,
    };
    match prepare(data, &limits) {
        Ok(img) => {
            assert!(img.width.max(img.height) <= 256);
            assert!(u64::from(img.original_width) * u64::from(img.original_height) <= 4_000_000);
            assert!(!img.data.is_empty());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
