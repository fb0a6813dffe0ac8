//! Property tests of the image intake: every truncation and many random corruptions of valid
//! PNG, JPEG, WebP and GIF files end in an image within the limits or a typed refusal (never a
//! panic); giant dimensions claimed by a header are refused before decoding; the file name's
//! extension plays no part. A seeded generator keeps runs reproducible.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbaImage};
use yollayah_core::images::{
    ImageLimits, ImageRejection, prepare, prepare_base64, prepare_file, thumbnail,
};

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format)
        .expect("encode");
    out
}

fn samples() -> Vec<(ImageFormat, Vec<u8>)> {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(97, 61, |x, y| {
        image::Rgba([(x * 3) as u8, (y * 4) as u8, (x ^ y) as u8, 255])
    }));
    let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
    vec![
        (ImageFormat::Png, encode(&img, ImageFormat::Png)),
        (ImageFormat::Jpeg, encode(&rgb, ImageFormat::Jpeg)),
        (ImageFormat::WebP, encode(&img, ImageFormat::WebP)),
        (ImageFormat::Gif, encode(&img, ImageFormat::Gif)),
    ]
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The property: a bounded image or a typed refusal.
fn holds(bytes: &[u8], limits: &ImageLimits) {
    match prepare(bytes, limits) {
        Ok(img) => {
            assert!(img.width.max(img.height) <= limits.longest_side);
            assert!(
                u64::from(img.original_width) * u64::from(img.original_height) <= limits.max_pixels
            );
            assert!(matches!(img.mime, "image/jpeg" | "image/png"));
            assert!(image::guess_format(&img.data).is_ok());
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

#[test]
fn every_truncation_is_an_image_or_a_clear_refusal() {
    let limits = ImageLimits::default();
    for (format, bytes) in samples() {
        // Every cut inside the headers, then every 13th byte of the data.
        let cuts = (0..bytes.len().min(256)).chain((256..bytes.len()).step_by(13));
        for cut in cuts {
            holds(&bytes[..cut], &limits);
        }
        // PNG and GIF cut in their pixel data are refused as damaged; JPEG and WebP decoders
        // may pad a cut scan, which then yields a (partly grey) image, also acceptable.
        if matches!(format, ImageFormat::Png) {
            let half = &bytes[..bytes.len() / 2];
            assert!(
                matches!(
                    prepare(half, &limits),
                    Err(ImageRejection::Malformed { .. })
                ),
                "{format:?}"
            );
        }
    }
}

#[test]
fn random_corruptions_never_panic() {
    let limits = ImageLimits {
        longest_side: 64,
        ..ImageLimits::default()
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for (_, bytes) in samples() {
        for _ in 0..200 {
            let mut b = bytes.clone();
            for _ in 0..=rng.below(8) {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            if rng.below(3) == 0 {
                let cut = rng.below(b.len());
                b.truncate(cut.max(1));
            }
            holds(&b, &limits);
        }
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A well-formed PNG (correct CRCs) whose header claims `w × h` pixels, with an empty IDAT.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr);
    png_chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A GIF whose screen and first frame claim `w × h`.
fn gif_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    out.push(0x2c);
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&[0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
    out
}

#[test]
fn giant_dimensions_are_refused_from_the_header() {
    let limits = ImageLimits::default();
    for (w, h, bytes) in [
        (60_000, 60_000, png_claiming(60_000, 60_000)),
        (65_535, 65_535, gif_claiming(65_535, 65_535)),
        (20_000, 5_000, png_claiming(20_000, 5_000)),
    ] {
        assert_eq!(
            prepare(&bytes, &limits),
            Err(ImageRejection::TooManyPixels {
                width: w,
                height: h,
                limit_pixels: limits.max_pixels
            })
        );
    }
    // Within the pixel cap but with no data behind the header: damaged, not allocated.
    assert!(matches!(
        prepare(&png_claiming(4000, 3000), &limits),
        Err(ImageRejection::Malformed { .. })
    ));
}

#[test]
fn the_extension_plays_no_part() {
    let dir = tempfile::tempdir().expect("dir");
    let samples = samples();
    let jpeg = &samples[1].1;
    let misnamed = dir.path().join("photo.png");
    std::fs::write(&misnamed, jpeg).expect("write");
    let img = prepare_file(&misnamed, &ImageLimits::default()).expect("a JPEG named .png");
    assert_eq!(img.source_format, "jpeg");

    let text = dir.path().join("cat.jpg");
    std::fs::write(&text, "not an image at all").expect("write");
    let err = prepare_file(&text, &ImageLimits::default()).expect_err("text named .jpg");
    assert!(
        err.to_string()
            .ends_with("cat.jpg: this is not a PNG, JPEG, WebP or GIF image"),
        "{err}"
    );
    let gif = dir.path().join("anim.webp");
    std::fs::write(&gif, &samples[3].1).expect("write");
    assert_eq!(
        prepare_file(&gif, &ImageLimits::default())
            .expect("GIF named .webp")
            .source_format,
        "gif"
    );
}

#[test]
fn files_over_the_size_limit_are_not_read_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big.png");
    let mut bytes = samples()[0].1.clone();
    bytes.resize(3 << 20, 0);
    std::fs::write(&big, &bytes).expect("write");
    let limits = ImageLimits {
        max_file_bytes: 1 << 20,
        ..ImageLimits::default()
    };
    let err = prepare_file(&big, &limits).expect_err("too big");
    assert!(
        err.to_string()
            .contains(&format!("{} bytes; images up to 1048576", (1 << 20) + 1)),
        "{err}"
    );
}

/// Writes the fuzz seed corpus (`cargo test --test image_intake -- --ignored`).
#[test]
#[ignore = "regenerates fuzz/corpus/image_intake"]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/image_intake");
    std::fs::create_dir_all(&dir).expect("dir");
    for (format, bytes) in samples() {
        let name = format!("seed.{}", format.extensions_str()[0]);
        std::fs::write(dir.join(name), bytes).expect("write");
    }
    std::fs::write(dir.join("giant.png"), png_claiming(60_000, 60_000)).expect("write");
    std::fs::write(dir.join("giant.gif"), gif_claiming(65_535, 65_535)).expect("write");
}

/// What the chat window sends (`attach_image`): base64 text. Every cut and stray character
/// ends in a typed refusal or an image within the limits, and an oversized file is refused
/// from the text's length alone.
#[test]
fn base64_input_cut_or_garbled_is_refused_clearly() {
    use base64::Engine as _;
    let limits = ImageLimits::default();
    let mut rng = Rng(0x5eed_b64b_64b6_4b64);
    for (_, bytes) in samples() {
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let whole = prepare_base64(&text, &limits).expect("the whole file");
        assert_eq!((whole.width, whole.height), (97, 61));
        for cut in (0..text.len()).step_by(7) {
            match prepare_base64(&text[..cut], &limits) {
                Ok(img) => assert!(img.width <= limits.longest_side),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        for _ in 0..50 {
            let mut t = text.clone().into_bytes();
            let i = rng.below(t.len());
            t[i] = b"!@#$%^&*( "[rng.below(10)];
            let t = String::from_utf8(t).expect("ascii");
            assert_eq!(prepare_base64(&t, &limits), Err(ImageRejection::NotBase64));
        }
        // Thumbnails of every sample decode and fit the thumbnail box.
        let thumb = thumbnail(&whole.data).expect("thumbnail");
        assert!(thumb.width.max(thumb.height) <= yollayah_core::images::THUMBNAIL_SIDE);
    }
    let small = ImageLimits {
        max_file_bytes: 1000,
        ..limits
    };
    // 4 MB of base64 claimed: refused without decoding (the text is not even valid).
    let huge = "A".repeat(4 << 20);
    assert!(matches!(
        prepare_base64(&huge, &small),
        Err(ImageRejection::FileTooLarge { limit: 1000, .. })
    ));
}
