//! Deriving the data plane's [`MeshView`] from the store.

use super::actor::MeshActor;
use crate::view::{CertView, EdgeInfo, LiveRoute, MeshView};
use hearth_proto::election::edge_ips;
use hearth_proto::route::Route;
use hearth_proto::{Body, Kind, Record};
use std::collections::BTreeMap;
use std::sync::Arc;
use tracing::warn;

impl MeshActor {
    /// Every stored Route record's body by record key: the route cache's starting point.
    pub(super) fn load_routes(
        store: &crate::store::Store,
    ) -> Result<BTreeMap<String, Route>, crate::store::StoreError> {
        Ok(store
            .routes()?
            .into_iter()
            .map(|(record, route)| (record.key, route))
            .collect())
    }

    /// Newly stored Route records (tombstones included) update the route cache. Before, the
    /// view was derived by reading and decoding every route from the store for each record
    /// stored, which a burst of publishes made quadratic.
    pub(super) fn routes_stored(&mut self, stored: &[Record]) {
        for record in stored.iter().filter(|r| r.kind == Kind::Route) {
            if let Ok(Body::Route(route)) = record.decode_body() {
                self.routes.insert(record.key.clone(), route);
            }
        }
    }

    /// Tombstones were purged from the store: the cache reads it again.
    pub(super) fn reload_routes(&mut self) {
        match Self::load_routes(&self.store) {
            Ok(routes) => self.routes = routes,
            Err(e) => warn!(error = %e, "cannot read the routes"),
        }
    }

    /// Recomputes the view from the store and the latest election, and sends it if it
    /// changed.
    pub(super) fn publish_view(&mut self) {
        match self.derive_view() {
            Ok(view) => {
                let edge = view.is_edge(&self.me);
                self.data_plane.update(|s| s.edge = edge);
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
            down: self.swim.down().clone(),
            ..MeshView::default()
        };
        let infos = self.member_infos();
        for (rank, edge) in self.election.edges.iter().enumerate() {
            let Some(info) = infos.get(edge) else {
                continue;
            };
            view.edges.insert(
                *edge,
                EdgeInfo {
                    name: info.name.clone(),
                    rank,
                    tunnel: info.tunnel.iter().filter_map(|a| a.parse().ok()).collect(),
                    ips: edge_ips(info),
                },
            );
        }
        for route in self.routes.values() {
            let Some(target) = route.target.clone() else {
                continue;
            };
            if view.members.contains(&route.node) {
                view.routes.push(LiveRoute {
                    spec: route.spec.clone(),
                    node: route.node,
                    target,
                    proxy_protocol: route.proxy_protocol,
                    tls: route.tls,
                });
            }
        }
        view.certs = self.cert_view(&infos)?;
        Ok(view)
    }

    /// The certificate records as the data plane and the ACME actor read them. Acks count only
    /// from current members; issuers are the members announcing an ACME directory.
    fn cert_view(
        &self,
        infos: &std::collections::BTreeMap<hearth_proto::NodeId, hearth_proto::record::NodeInfo>,
    ) -> Result<CertView, crate::store::StoreError> {
        let mut out = CertView::default();
        for kind in [
            Kind::Cert,
            Kind::AcmeAccount,
            Kind::AcmeOrder,
            Kind::ChallengeAck,
            Kind::CertRequest,
        ] {
            for record in self.store.records_of(kind)? {
                let Ok(body) = record.decode_body() else {
                    continue;
                };
                match body {
                    Body::Cert(cert) => {
                        out.certs.insert(record.key, cert);
                    }
                    Body::AcmeAccount(account) => {
                        out.accounts.insert(record.key, account);
                    }
                    Body::AcmeOrder(order) => {
                        out.orders.insert(record.key, (order, record.hlc.millis));
                    }
                    Body::ChallengeAck(ack) if self.membership.is_member(&record.author) => {
                        out.acks
                            .entry(ack.name)
                            .or_default()
                            .insert(record.author, ack.digest);
                    }
                    Body::CertRequest(request) => {
                        out.requests.insert(record.key, request);
                    }
                    _ => {}
                }
            }
        }
        out.issuers = infos
            .iter()
            .filter(|(node, _)| self.membership.is_member(node))
            .filter_map(|(node, info)| info.acme.clone().map(|dir| (*node, dir)))
            .collect();
        Ok(out)
    }
}
