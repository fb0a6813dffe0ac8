//! Images attached in the chat window, between "attach" and "send". The window sends the file's
//! bytes once (base64, [`crate::wire::Command::AttachImage`]); the tray prepares them
//! ([`yollayah_core::images`]: decoded under limits, downscaled, re-encoded) and keeps the
//! result here under a number. The window only ever holds that number and a small thumbnail
//! (a `data:` URL made here: the page's CSP allows `data:` images and nothing remote), and
//! `send_message` names the numbers. So the bytes cross the socket once, the webview never
//! holds a full-size image, and what is sent is exactly what was checked.
//!
//! Bounded: at most [`MAX_PENDING`] images wait; attaching one more forgets the oldest (a
//! window that attached and never sent, or crashed).

use std::collections::VecDeque;
use std::sync::Mutex;

use yollayah_core::history::ImageRef;
use yollayah_core::images::{self, ImageLimits, ImageRejection, PreparedImage};

use crate::error::{Error, Result};
use crate::ipc::{Attachment, ImageRow};
use crate::lock::lock;

/// Images waiting to be sent, all windows together: a few messages' worth.
pub const MAX_PENDING: usize = 16;

/// Longest file name kept for a message ("pasted image" when there is none).
const MAX_NAME: usize = 200;

/// The images waiting to be sent.
#[derive(Debug, Default)]
pub struct Attachments {
    inner: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    next: u64,
    items: VecDeque<(u64, String, PreparedImage)>,
}

/// "pasted image" for a nameless paste; control characters and absurd lengths removed.
fn clean_name(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME)
        .collect();
    let name = name.trim();
    if name.is_empty() {
        "pasted image".to_owned()
    } else {
        name.to_owned()
    }
}

impl Attachments {
    /// Prepares base64 file bytes (on a blocking thread: a 12 MP photo is ~100 ms of CPU) and
    /// keeps the result. Refusals name the file.
    pub async fn attach(
        &self,
        name: &str,
        data: String,
        limits: ImageLimits,
    ) -> Result<Attachment> {
        let name = clean_name(name);
        let prepared = tokio::task::spawn_blocking(move || {
            let image = images::prepare_base64(&data, &limits)?;
            let thumb = images::thumbnail(&image.data)?;
            Ok::<_, ImageRejection>((image, thumb.data_url()))
        })
        .await
        .map_err(|e| Error::Internal(format!("image task: {e}")))?;
        let (image, thumb) = prepared.map_err(|reason| {
            Error::Core(yollayah_core::Error::Image {
                name: name.clone(),
                reason,
            })
        })?;
        let mut p = lock(&self.inner);
        p.next += 1;
        let id = p.next;
        let attachment = Attachment {
            id,
            name: name.clone(),
            thumb,
            width: image.width,
            height: image.height,
            original_width: image.original_width,
            original_height: image.original_height,
            bytes: image.data.len(),
        };
        if p.items.len() >= MAX_PENDING {
            p.items.pop_front();
        }
        p.items.push_back((id, name, image));
        Ok(attachment)
    }

    /// Forgets an attached image (removed from the composer). Unknown ids are ignored.
    pub fn discard(&self, id: u64) {
        lock(&self.inner).items.retain(|(i, _, _)| *i != id);
    }

    /// Takes the images `ids` names, in that order, for sending. All or nothing: an unknown id
    /// (forgotten, or sent already) refuses the message and leaves the others waiting.
    pub fn take(&self, ids: &[u64], limits: &ImageLimits) -> Result<Vec<PreparedImage>> {
        images::check_count(ids.len(), limits).map_err(|reason| {
            Error::Core(yollayah_core::Error::Image {
                name: "attached images".into(),
                reason,
            })
        })?;
        let mut p = lock(&self.inner);
        if let Some(missing) = ids
            .iter()
            .find(|id| !p.items.iter().any(|(i, _, _)| i == *id))
        {
            return Err(Error::BadInput(format!(
                "attached image {missing} is no longer available; attach it again"
            )));
        }
        if ids.iter().enumerate().any(|(n, id)| ids[..n].contains(id)) {
            return Err(Error::BadInput("an attached image is named twice".into()));
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(pos) = p.items.iter().position(|(i, _, _)| i == id)
                && let Some((_, _, image)) = p.items.remove(pos)
            {
                out.push(image);
            }
        }
        Ok(out)
    }

    /// Puts images back after a send that failed before anything was stored, so the user can
    /// try again without attaching them again.
    pub fn restore(&self, ids: &[u64], images: Vec<PreparedImage>) {
        let mut p = lock(&self.inner);
        for (id, image) in ids.iter().zip(images) {
            if p.items.len() >= MAX_PENDING {
                p.items.pop_front();
            }
            p.items.push_back((*id, String::new(), image));
        }
    }

    /// How many images wait.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.inner).items.len()
    }

    /// Whether none waits.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A stored image again as a [`PreparedImage`] (retry re-sends the question with its images).
pub fn from_stored(image: &ImageRef, data: Vec<u8>) -> PreparedImage {
    let (mime, source_format) = if image.mime == "image/png" {
        ("image/png", "png")
    } else {
        ("image/jpeg", "jpeg")
    };
    PreparedImage {
        data,
        mime,
        width: image.width,
        height: image.height,
        original_width: image.width,
        original_height: image.height,
        source_format,
    }
}

/// The row of a stored image, with its thumbnail.
pub fn stored_row(image: &ImageRef, data: Option<&[u8]>) -> ImageRow {
    ImageRow {
        id: image.id,
        width: image.width,
        height: image.height,
        thumb: data
            .and_then(|d| images::thumbnail(d).ok())
            .map(|t| t.data_url()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn jpeg_b64(w: u32, h: u32) -> String {
        use base64::Engine as _;
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 40]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
            .expect("jpeg");
        base64::engine::general_purpose::STANDARD.encode(out)
    }

    #[tokio::test]
    async fn attach_take_discard_and_the_bound() {
        let a = Attachments::default();
        let l = ImageLimits::default();
        let first = a
            .attach("cat.jpg", jpeg_b64(2240, 1000), l)
            .await
            .expect("attach");
        assert_eq!((first.width, first.height), (1120, 500));
        assert_eq!((first.original_width, first.original_height), (2240, 1000));
        assert_eq!(first.name, "cat.jpg");
        assert!(
            first.thumb.starts_with("data:image/jpeg;base64,"),
            "{}",
            first.thumb
        );
        // The thumbnail is small: it is all the webview ever holds.
        assert!(first.thumb.len() < 20_000, "{}", first.thumb.len());
        let second = a.attach("", jpeg_b64(10, 10), l).await.expect("attach");
        assert_eq!(second.name, "pasted image");
        assert_ne!(first.id, second.id);

        // An unknown id refuses the whole message and keeps the rest waiting.
        assert!(a.take(&[first.id, 999], &l).is_err());
        assert!(a.take(&[first.id, first.id], &l).is_err(), "named twice");
        assert_eq!(a.len(), 2);
        let taken = a.take(&[second.id, first.id], &l).expect("take");
        assert_eq!(
            taken.iter().map(|i| i.width).collect::<Vec<_>>(),
            vec![10, 1120],
            "in the order named"
        );
        assert!(a.is_empty());
        assert!(a.take(&[first.id], &l).is_err(), "sent once only");

        let err = a
            .attach("notes.png", "aGVsbG8gd29ybGQ=".into(), l)
            .await
            .expect_err("text is not an image");
        assert_eq!(err.kind(), "bad_input");
        assert!(
            err.to_string().starts_with("notes.png: this is not a PNG"),
            "{err}"
        );

        let mut ids = Vec::new();
        for _ in 0..MAX_PENDING + 2 {
            ids.push(a.attach("x", jpeg_b64(4, 4), l).await.expect("attach").id);
        }
        assert_eq!(a.len(), MAX_PENDING);
        assert!(a.take(&ids[..1], &l).is_err(), "the oldest was forgotten");
        a.discard(ids[5]);
        assert_eq!(a.len(), MAX_PENDING - 1);
        let too_many = a.take(&ids[6..11], &l).expect_err("5 > 4 per message");
        assert!(too_many.to_string().contains("at most 4"), "{too_many}");
    }
}
