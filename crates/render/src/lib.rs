//! yollayah-render: turns model output (untrusted Markdown) into HTML that is safe to insert into
//! the chat window, either in one go or block by block while a reply streams.
//!
//! Safety does not rest on one layer: raw HTML in the Markdown is shown as text (never parsed as
//! markup), images become plain links, and the HTML that pulldown-cmark produces then goes through
//! an ammonia allow-list (see [`sanitize`]) before anyone sees it.
//!
//! Streaming: [`IncrementalRenderer`] splits a reply into top-level Markdown blocks and renders
//! each block once, when it is complete, so the cost per delta stays flat however long the reply
//! grows. [`render_all`] is the same split applied to a whole text, so that a reply rendered at
//! the end equals the concatenation of what was streamed.

mod blocks;
mod markdown;
pub mod sanitize;

pub use blocks::{IncrementalRenderer, Update, render_all};
pub use markdown::render_markdown;
