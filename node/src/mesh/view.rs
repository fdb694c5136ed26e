//! Deriving the data plane's [`MeshView`] from the store.

use super::actor::MeshActor;
use crate::view::{LiveRoute, MeshView};
use hearth_proto::{Body, Kind};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::warn;

impl MeshActor {
    /// Recomputes the view and sends it if it changed.
    pub(super) fn publish_view(&mut self) {
        match self.derive_view() {
            Ok(view) => {
                self.view.send_if_modified(|current| {
                    if **current == view {
                        return false;
                    }
                    *current = Arc::new(view);
                    true
                });
            }
            Err(e) => warn!(error = %e, "cannot derive the data-plane view"),
        }
    }

    fn derive_view(&self) -> Result<MeshView, crate::store::StoreError> {
        let members = self
            .membership
            .members()
            .map(|(id, _)| *id)
            .chain(std::iter::once(self.membership.founder()))
            .filter(|id| self.membership.is_member(id))
            .collect();
        let mut view = MeshView {
            members,
            ..MeshView::default()
        };
        for record in self.store.records_of(Kind::NodeInfo)? {
            let Ok(Body::NodeInfo(info)) = record.decode_body() else {
                continue;
            };
            if info.edge && view.members.contains(&record.author) {
                let addrs: Vec<SocketAddr> =
                    info.tunnel.iter().filter_map(|a| a.parse().ok()).collect();
                view.edges.insert(record.author, addrs);
            }
        }
        for (_, route) in self.store.routes()? {
            let Some(target) = route.target else { continue };
            if view.members.contains(&route.node) {
                view.routes.push(LiveRoute {
                    spec: route.spec,
                    node: route.node,
                    target,
                    proxy_protocol: route.proxy_protocol,
                });
            }
        }
        Ok(view)
    }
}
