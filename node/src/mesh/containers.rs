//! Container routes on the mesh actor's side: `publish --container` intents, and turning the
//! Docker actor's view of running containers into Route records.

use super::actor::MeshActor;
use crate::services::labels::valid_container_name;
use crate::services::{ContainerRoute, ResolvedRoute};
use hearth_proto::api::{ApiError, ApiErrorKind, ResponseV1};
use hearth_proto::route::{Route, RouteSpec, RouteTls};
use hearth_proto::Body;
use tracing::{info, warn};

impl MeshActor {
    /// Makes this node follow `container` for `spec`.
    pub(super) fn publish_container(
        &mut self,
        spec: RouteSpec,
        container: String,
        port: u16,
        tls: RouteTls,
    ) -> Result<ResponseV1, ApiError> {
        spec.check()
            .map_err(|e| ApiError::new(ApiErrorKind::BadRequest, e.to_string()))?;
        if !valid_container_name(&container) {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                format!("`{container}` is not a container name or id; see `docker ps`"),
            ));
        }
        if port == 0 {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                "the container port must be 1-65535",
            ));
        }
        let mut intents = self.store.container_routes()?;
        intents.retain(|i| i.spec != spec);
        intents.push(ContainerRoute {
            spec: spec.clone(),
            container: container.clone(),
            port,
            proxy_protocol: false,
            tls,
        });
        self.store.set_container_routes(&intents)?;
        self.container_intents.send_replace(intents);
        Ok(ResponseV1::Following {
            spec,
            container,
            port,
        })
    }

    /// Forgets a `publish --container` intent; whether there was one.
    pub(super) fn forget_container(&mut self, spec: &RouteSpec) -> Result<bool, ApiError> {
        let mut intents = self.store.container_routes()?;
        let before = intents.len();
        intents.retain(|i| i.spec != *spec);
        if intents.len() == before {
            return Ok(false);
        }
        self.store.set_container_routes(&intents)?;
        self.container_intents.send_replace(intents);
        Ok(true)
    }

    /// Writes the container routes the Docker actor found, and withdraws this node's other
    /// container routes (stopped, unhealthy, removed, or vanished while the node was down).
    pub(super) fn sync_container_routes(&mut self, wanted: Vec<ResolvedRoute>) {
        let current: Vec<Route> = match self.store.routes() {
            Ok(routes) => routes
                .into_iter()
                .map(|(_, route)| route)
                .filter(|r| r.node == self.me && r.target.is_some() && r.container.is_some())
                .collect(),
            Err(e) => return warn!(error = %e, "cannot read routes"),
        };
        for resolved in &wanted {
            let route = Route {
                spec: resolved.route.spec.clone(),
                node: self.me,
                target: Some(resolved.target.clone()),
                proxy_protocol: resolved.route.proxy_protocol,
                container: Some(resolved.route.container.clone()),
                tls: resolved.route.tls,
            };
            if current.contains(&route) {
                continue;
            }
            info!(spec = %route.spec, target = %resolved.target, container = %resolved.route.container, "container route published");
            if let Err(e) = self.write(Body::Route(route)) {
                warn!(error = %e.message, "cannot publish a container route");
            }
        }
        for route in current {
            if wanted.iter().any(|w| w.route.spec == route.spec) {
                continue;
            }
            info!(spec = %route.spec, container = ?route.container, "container route withdrawn");
            let tombstone = Route {
                target: None,
                ..route
            };
            if let Err(e) = self.write(Body::Route(tombstone)) {
                warn!(error = %e.message, "cannot withdraw a container route");
            }
        }
    }
}
