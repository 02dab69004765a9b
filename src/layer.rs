//! The layer that applies [`Sticky`].

use std::sync::Arc;

use tower_layer::Layer;

use crate::{MemoryJar, Sticky};

/// Applies the [`Sticky`] middleware, which stores the cookies of each
/// response and replays them on later requests.
///
/// All services made by one layer share its jar, so a client that is cloned
/// for each task keeps one affinity. See the [crate docs](crate) for an
/// example.
#[derive(Debug, Clone)]
pub struct StickyLayer<J = Arc<MemoryJar>> {
    jar: J,
}

impl StickyLayer {
    /// Creates a layer with a new, empty [`MemoryJar`] with default limits.
    pub fn new() -> Self {
        StickyLayer {
            jar: Arc::new(MemoryJar::new()),
        }
    }
}

impl Default for StickyLayer {
    fn default() -> Self {
        StickyLayer::new()
    }
}

impl<J> StickyLayer<J> {
    /// Creates a layer that keeps cookies in `jar`.
    ///
    /// Pass an `Arc` of a jar to share it with other layers or to read it
    /// later, as in `StickyLayer::with_jar(Arc::clone(&jar))`.
    pub const fn with_jar(jar: J) -> Self {
        StickyLayer { jar }
    }

    /// Returns the jar.
    pub const fn jar(&self) -> &J {
        &self.jar
    }
}

impl<S, J: Clone> Layer<S> for StickyLayer<J> {
    type Service = Sticky<S, J>;

    fn layer(&self, inner: S) -> Self::Service {
        Sticky::with_jar(inner, self.jar.clone())
    }
}
