//! Sticky sessions for HTTP clients.
//!
//! TODO: crate docs.

#![deny(missing_docs)]
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod future;
pub mod jar;
mod layer;
mod service;
mod target;

pub use future::ResponseFuture;
pub use jar::{CookieJar, JarStats, MemoryJar, MemoryJarBuilder, RejectReason};
pub use layer::StickyLayer;
pub use service::Sticky;
pub use target::RequestTarget;
