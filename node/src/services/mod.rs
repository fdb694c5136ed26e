//! Local targets of routes that come from Docker: containers with `hearth.*` labels, and
//! containers named by `hearthctl publish --container`. The [`DockerActor`] resolves them to
//! addresses; the mesh actor writes, rewrites and withdraws the Route records.

mod docker;
pub mod labels;

pub use docker::DockerActor;
pub use labels::ContainerRoute;

use std::sync::{Arc, Mutex};

/// A container route with the address this node reaches the container on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRoute {
    /// What was asked for.
    pub route: ContainerRoute,
    /// `ip:port` of the container.
    pub target: String,
}

/// A report one subsystem writes and the mesh actor reads for `hearthctl status`.
#[derive(Debug, Default)]
pub struct Report<T>(Arc<Mutex<T>>);

impl<T> Clone for Report<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Clone + Default> Report<T> {
    /// The current report.
    pub fn snapshot(&self) -> T {
        self.0.lock().map(|g| g.clone()).unwrap_or_default()
    }

    /// Changes the report.
    pub fn update(&self, change: impl FnOnce(&mut T)) {
        if let Ok(mut guard) = self.0.lock() {
            change(&mut guard);
        }
    }
}
