//! Image intake for vision models: a pasted, dropped or picked file becomes a small, re-encoded
//! image that Ollama can take (`images`, base64), or a typed refusal that says why.
//!
//! * Formats are told by their magic bytes, never by the file name: PNG, JPEG, WebP and GIF
//!   (first frame). Anything else is [`ImageRejection::UnsupportedFormat`].
//! * Memory stays bounded: the input size is capped before reading, the dimensions are read
//!   from the header before any pixel is decoded, and the decoder runs under
//!   [`image::Limits`], so a 1 KB file claiming 60000 × 60000 pixels is refused without
//!   allocating its pixels.
//! * Images larger than [`ImageLimits::longest_side`] (default 1120 px) are downscaled,
//!   keeping the aspect ratio, never upscaled. 1120 px covers what today's vision models look
//!   at: gemma3 resizes to 896 × 896 (`gemma3.vision.image_size`), llama3.2-vision tiles up to
//!   2 × 2 × 560 px; larger images only cost upload, memory and prompt tokens.
//! * The result is JPEG (quality 85) for opaque images and PNG when the image has
//!   transparency, both formats every Ollama vision model accepts.

use std::io::{Cursor, Read};
use std::path::Path;

use base64::Engine as _;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use serde::Serialize;

// `ImageRejection` lives in error.rs, under the crate's `Error` that carries it.
pub use crate::error::ImageRejection;
use crate::error::{Error, Result};

/// JPEG quality of re-encoded images: artefacts are invisible to the models at this level and
/// a 1120 px photo stays around 150–250 KB.
const JPEG_QUALITY: u8 = 85;

/// Size and count limits of the intake. The defaults suit the popup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImageLimits {
    /// Largest file accepted, in bytes (default 25 MiB: a 50 MP camera JPEG fits).
    pub max_file_bytes: u64,
    /// Largest width × height decoded (default 50 megapixels).
    pub max_pixels: u64,
    /// Longest side of the image sent to the model (default 1120 px).
    pub longest_side: u32,
    /// Images per message (default 4).
    pub max_images: usize,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_file_bytes: 25 << 20,
            max_pixels: 50_000_000,
            longest_side: 1120,
            max_images: 4,
        }
    }
}

/// An image ready to send and to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedImage {
    /// The encoded bytes (JPEG or PNG).
    pub data: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    /// Size of the original, before any downscale.
    pub original_width: u32,
    pub original_height: u32,
    /// The format the file really was (`png`, `jpeg`, `webp`, `gif`).
    pub source_format: &'static str,
}

impl PreparedImage {
    /// The base64 text Ollama's `images` field takes.
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.data)
    }

    /// A `data:` URL for a thumbnail in the webview (no remote URL ever reaches it).
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.mime, self.base64())
    }
}

/// The format name for a supported magic number.
fn supported(format: ImageFormat) -> Option<&'static str> {
    match format {
        ImageFormat::Png => Some("png"),
        ImageFormat::Jpeg => Some("jpeg"),
        ImageFormat::WebP => Some("webp"),
        ImageFormat::Gif => Some("gif"),
        _ => None,
    }
}

/// Prepares an image held in memory. Pure and bounded: see the module docs.
pub fn prepare(bytes: &[u8], limits: &ImageLimits) -> Result<PreparedImage, ImageRejection> {
    if bytes.is_empty() {
        return Err(ImageRejection::Empty);
    }
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(ImageRejection::FileTooLarge {
            bytes: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let guessed = image::guess_format(bytes).ok();
    let Some((format, name)) = guessed.and_then(|f| supported(f).map(|n| (f, n))) else {
        return Err(ImageRejection::UnsupportedFormat {
            detected: guessed.map(|f| format!("{f:?}").to_ascii_uppercase()),
        });
    };
    let malformed = |e: image::ImageError| ImageRejection::Malformed {
        format: name.to_ascii_uppercase(),
        reason: e.to_string(),
    };
    let reader = |limits: Limits| {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        r.limits(limits);
        r
    };
    // Dimensions first, from the header alone.
    let (width, height) = reader(Limits::default())
        .into_dimensions()
        .map_err(malformed)?;
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels || width == 0 || height == 0 {
        return Err(ImageRejection::TooManyPixels {
            width,
            height,
            limit_pixels: limits.max_pixels,
        });
    }
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(width);
    decode_limits.max_image_height = Some(height);
    // 16-bit RGBA is the widest buffer a supported decoder produces.
    decode_limits.max_alloc = Some(pixels.saturating_mul(8).saturating_add(1 << 20));
    let decoded = reader(decode_limits).decode().map_err(malformed)?;
    let (original_width, original_height) = (decoded.width(), decoded.height());
    let scaled = downscale(decoded, limits.longest_side);
    encode(&scaled).map(|(data, mime)| PreparedImage {
        data,
        mime,
        width: scaled.width(),
        height: scaled.height(),
        original_width,
        original_height,
        source_format: name,
    })
}

/// [`prepare`] for bytes that arrive as base64 (the chat window sends a pasted, dropped or
/// picked file this way). The size limit is checked on the encoded length first, so an
/// oversized file is refused without decoding it.
pub fn prepare_base64(text: &str, limits: &ImageLimits) -> Result<PreparedImage, ImageRejection> {
    let text = text.trim();
    // Base64 carries 3 bytes in 4 characters; padding makes this a slight overestimate.
    let bytes = (text.len() as u64).div_ceil(4) * 3;
    if bytes > limits.max_file_bytes.saturating_add(2) {
        return Err(ImageRejection::FileTooLarge {
            bytes,
            limit: limits.max_file_bytes,
        });
    }
    let data = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ImageRejection::NotBase64)?;
    prepare(&data, limits)
}

/// Longest side of a thumbnail, in pixels: 2 × the 96 CSS px the window shows, for HiDPI.
pub const THUMBNAIL_SIDE: u32 = 192;

/// A small copy of an image for the window (a few KB as a `data:` URL), from the bytes of a
/// prepared or stored image.
pub fn thumbnail(bytes: &[u8]) -> Result<PreparedImage, ImageRejection> {
    prepare(
        bytes,
        &ImageLimits {
            longest_side: THUMBNAIL_SIDE,
            ..ImageLimits::default()
        },
    )
}

/// Reads at most `max_file_bytes + 1` bytes of `path` and prepares it.
pub fn prepare_file(path: impl AsRef<Path>, limits: &ImageLimits) -> Result<PreparedImage> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let io = |source| Error::Io {
        path: shown.clone(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    prepare(&bytes, limits).map_err(|reason| Error::Image {
        name: shown.clone(),
        reason,
    })
}

/// Refuses more images than one message may carry.
pub fn check_count(count: usize, limits: &ImageLimits) -> Result<(), ImageRejection> {
    if count > limits.max_images {
        return Err(ImageRejection::TooMany {
            count,
            limit: limits.max_images,
        });
    }
    Ok(())
}

/// Scales so the longest side is at most `longest`. Area averaging is the right filter for
/// shrinking: exact 2 × 2 box halvings while the result stays at least the target size (cheap,
/// integer, and themselves area averages), then `thumbnail_exact` for the last step (a factor
/// below 2). On a 12 MP photo this takes a quarter of the pixels out of the slow path.
fn downscale(img: DynamicImage, longest: u32) -> DynamicImage {
    let (w, h) = (img.width(), img.height());
    if w.max(h) <= longest || longest == 0 {
        return img;
    }
    let scale = f64::from(longest) / f64::from(w.max(h));
    let nw = ((f64::from(w) * scale).round() as u32).clamp(1, longest);
    let nh = ((f64::from(h) * scale).round() as u32).clamp(1, longest);
    let mut img = img;
    while img.width() / 2 >= nw && img.height() / 2 >= nh {
        img = match img {
            DynamicImage::ImageRgb8(b) => DynamicImage::ImageRgb8(halve(&b)),
            DynamicImage::ImageRgba8(b) => DynamicImage::ImageRgba8(halve(&b)),
            // Other layouts (16-bit, grey) are rare: `thumbnail_exact` does all of it.
            other => {
                img = other;
                break;
            }
        };
    }
    img.thumbnail_exact(nw, nh)
}

/// A 2 × 2 box average of an 8-bit image (odd last row/column dropped).
fn halve<P>(src: &image::ImageBuffer<P, Vec<u8>>) -> image::ImageBuffer<P, Vec<u8>>
where
    P: image::Pixel<Subpixel = u8>,
{
    let n = usize::from(P::CHANNEL_COUNT);
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (ow, oh) = (w / 2, h / 2);
    let raw = src.as_raw();
    let stride = w * n;
    let mut out = vec![0u8; ow * oh * n];
    for (y, row) in out.chunks_exact_mut(ow * n).enumerate() {
        let top = &raw[2 * y * stride..2 * y * stride + stride];
        let bottom = &raw[(2 * y + 1) * stride..(2 * y + 1) * stride + stride];
        for (x, px) in row.chunks_exact_mut(n).enumerate() {
            let i = 2 * x * n;
            for c in 0..n {
                let sum = u16::from(top[i + c])
                    + u16::from(top[i + n + c])
                    + u16::from(bottom[i + c])
                    + u16::from(bottom[i + n + c]);
                px[c] = ((sum + 2) / 4) as u8;
            }
        }
    }
    // The buffer has exactly ow × oh × n bytes, so this cannot fail; fall back to an empty
    // image rather than panic if it ever did.
    image::ImageBuffer::from_raw(ow as u32, oh as u32, out)
        .unwrap_or_else(|| image::ImageBuffer::new(0, 0))
}

fn has_transparency(img: &DynamicImage) -> bool {
    match img {
        DynamicImage::ImageRgba8(b) => b.pixels().any(|p| p.0[3] != u8::MAX),
        DynamicImage::ImageLumaA8(b) => b.pixels().any(|p| p.0[1] != u8::MAX),
        DynamicImage::ImageRgba16(b) => b.pixels().any(|p| p.0[3] != u16::MAX),
        DynamicImage::ImageLumaA16(b) => b.pixels().any(|p| p.0[1] != u16::MAX),
        DynamicImage::ImageRgba32F(b) => b.pixels().any(|p| p.0[3] < 1.0),
        _ => false,
    }
}

fn encode(img: &DynamicImage) -> Result<(Vec<u8>, &'static str), ImageRejection> {
    let err = |e: image::ImageError| ImageRejection::Encode {
        reason: e.to_string(),
    };
    let mut out = Vec::new();
    if has_transparency(img) {
        let rgba = img.to_rgba8();
        rgba.write_with_encoder(image::codecs::png::PngEncoder::new(&mut out))
            .map_err(err)?;
        Ok((out, "image/png"))
    } else {
        let rgb = img.to_rgb8();
        rgb.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
            &mut out,
            JPEG_QUALITY,
        ))
        .map_err(err)?;
        Ok((out, "image/jpeg"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, Rgba};

    fn png(w: u32, h: u32, alpha: u8) -> Vec<u8> {
        let img: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::from_fn(w, h, |x, y| {
            Rgba([(x % 256) as u8, (y % 256) as u8, 7, alpha])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("png");
        out
    }

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img: ImageBuffer<Rgb<u8>, Vec<u8>> =
            ImageBuffer::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 99]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .expect("jpeg");
        out
    }

    #[test]
    fn large_jpeg_is_downscaled_keeping_aspect() {
        let p = prepare(&jpeg(2400, 1200), &ImageLimits::default()).expect("prepared");
        assert_eq!((p.width, p.height), (1120, 560));
        assert_eq!((p.original_width, p.original_height), (2400, 1200));
        assert_eq!((p.mime, p.source_format), ("image/jpeg", "jpeg"));
        assert_eq!(image::guess_format(&p.data).ok(), Some(ImageFormat::Jpeg));
    }

    #[test]
    fn halving_is_a_box_average() {
        let src: ImageBuffer<Rgb<u8>, Vec<u8>> = ImageBuffer::from_fn(5, 4, |x, y| {
            Rgb([
                (x * 10 + y) as u8,
                200,
                if (x + y) % 2 == 0 { 0 } else { 255 },
            ])
        });
        let half = halve(&src);
        assert_eq!(half.dimensions(), (2, 2));
        // (0,0),(1,0),(0,1),(1,1) → r = (0+10+1+11)/4 = 5.5 → 6 (rounded); b = 2×255/4 → 128.
        assert_eq!(half.get_pixel(0, 0).0, [6, 200, 128]);
        let p = prepare(&jpeg(4000, 3000), &ImageLimits::default()).expect("12 MP");
        assert_eq!((p.width, p.height), (1120, 840));
    }

    #[test]
    fn small_images_are_not_upscaled_and_alpha_stays_png() {
        let p = prepare(&png(40, 30, 128), &ImageLimits::default()).expect("prepared");
        assert_eq!((p.width, p.height, p.mime), (40, 30, "image/png"));
        let opaque = prepare(&png(40, 30, 255), &ImageLimits::default()).expect("prepared");
        assert_eq!(opaque.mime, "image/jpeg");
        assert!(opaque.data_url().starts_with("data:image/jpeg;base64,/9j/"));
    }

    #[test]
    fn refusals_are_typed() {
        let l = ImageLimits::default();
        assert_eq!(prepare(b"", &l), Err(ImageRejection::Empty));
        assert!(matches!(
            prepare(b"hello, this is text", &l),
            Err(ImageRejection::UnsupportedFormat { detected: None })
        ));
        let bmp = b"BM\x00\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00";
        assert_eq!(
            prepare(bmp, &l).map_err(|e| e.to_string()),
            Err("this is not a PNG, JPEG, WebP or GIF image (it looks like BMP)".into())
        );
        let mut truncated = png(300, 200, 255);
        truncated.truncate(truncated.len() / 3);
        assert!(matches!(
            prepare(&truncated, &l),
            Err(ImageRejection::Malformed { .. })
        ));
        let small = ImageLimits {
            max_file_bytes: 10,
            ..l
        };
        assert!(matches!(
            prepare(&png(4, 4, 255), &small),
            Err(ImageRejection::FileTooLarge { .. })
        ));
        assert_eq!(
            check_count(5, &l),
            Err(ImageRejection::TooMany { count: 5, limit: 4 })
        );
    }

    #[test]
    fn base64_input_is_size_checked_before_decoding_and_thumbnails_are_small() {
        let l = ImageLimits::default();
        let b64 = base64::engine::general_purpose::STANDARD.encode(jpeg(800, 600));
        let p = prepare_base64(&b64, &l).expect("prepared");
        assert_eq!((p.width, p.height), (800, 600));
        assert_eq!(
            prepare_base64("not base64!", &l),
            Err(ImageRejection::NotBase64)
        );
        let small = ImageLimits {
            max_file_bytes: 100,
            ..l
        };
        assert!(matches!(
            prepare_base64(&b64, &small),
            Err(ImageRejection::FileTooLarge { limit: 100, .. })
        ));
        let t = thumbnail(&p.data).expect("thumbnail");
        assert_eq!((t.width, t.height), (192, 144));
        assert!(
            t.data.len() < p.data.len() / 3,
            "{} vs {}",
            t.data.len(),
            p.data.len()
        );
        assert!(thumbnail(&png(40, 30, 128)).expect("png").mime == "image/png");
    }

    #[test]
    fn huge_dimensions_are_refused_from_the_header() {
        // A valid PNG header claiming 60000 × 60000 pixels, then nothing.
        let mut png = png(1, 1, 255);
        png[16..20].copy_from_slice(&60_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&60_000u32.to_be_bytes());
        let r = prepare(&png, &ImageLimits::default());
        assert!(
            matches!(
                r,
                Err(ImageRejection::TooManyPixels {
                    width: 60_000,
                    height: 60_000,
                    ..
                }) | Err(ImageRejection::Malformed { .. })
            ),
            "{r:?}"
        );
    }
}
