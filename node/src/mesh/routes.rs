//! Route commands of the mesh actor: publish, unpublish, list.
//!
//! A route is written like any record: signed here, stored after validation (flushed, so an
//! acknowledged publish survives `kill -9`), then pushed to the mesh.

use super::actor::MeshActor;
use hearth_proto::api::{resolve_node, ApiError, ApiErrorKind, ResponseV1, RouteRowV1};
use hearth_proto::route::{parse_target, Route, RouteSpec, RouteTls};
use hearth_proto::{Body, NodeId, Record};
use std::collections::HashMap;

impl MeshActor {
    /// The hosting node a person meant: this node by default.
    fn hosting_node(&self, query: Option<&str>) -> Result<NodeId, ApiError> {
        match query {
            None => Ok(self.me),
            Some(query) => {
                let rows = self.member_rows();
                resolve_node(query, rows.iter().map(|r| (r.node, r.name.as_str())))
            }
        }
    }

    fn check_spec(spec: &RouteSpec) -> Result<(), ApiError> {
        spec.check()
            .map_err(|e| ApiError::new(ApiErrorKind::BadRequest, e.to_string()))
    }

    pub(super) fn publish(
        &mut self,
        spec: RouteSpec,
        target: &str,
        node: Option<&str>,
        proxy_protocol: bool,
        tls: RouteTls,
    ) -> Result<ResponseV1, ApiError> {
        Self::check_spec(&spec)?;
        if proxy_protocol && !matches!(spec, RouteSpec::Tcp { .. }) && tls != RouteTls::Passthrough
        {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                "the PROXY protocol header is for TCP routes and for `--tls passthrough` routes whose target terminates TLS itself; HTTP routes get X-Forwarded-For and Forwarded headers instead",
            ));
        }
        if tls != RouteTls::Edge && !matches!(spec, RouteSpec::Http { .. }) {
            return Err(ApiError::new(
                ApiErrorKind::BadRequest,
                "--http-only and --tls are for HTTP routes; a TCP route carries whatever its target speaks",
            ));
        }
        let target = parse_target(target)
            .map_err(|e| ApiError::new(ApiErrorKind::BadRequest, e.to_string()))?;
        let node = self.hosting_node(node)?;
        let route = Route {
            spec,
            node,
            target: Some(target),
            proxy_protocol,
            container: None,
            tls,
        };
        let record = self.write(Body::Route(route.clone()))?;
        let names = self.member_names();
        Ok(ResponseV1::Published(self.row(&names, &record, route)))
    }

    pub(super) fn unpublish(
        &mut self,
        spec: RouteSpec,
        node: Option<&str>,
    ) -> Result<ResponseV1, ApiError> {
        Self::check_spec(&spec)?;
        let node = self.hosting_node(node)?;
        let followed = node == self.me && self.forget_container(&spec)?;
        let live = self
            .store
            .routes()?
            .into_iter()
            .any(|(_, r)| r.spec == spec && r.node == node && r.target.is_some());
        if !live && followed {
            return Ok(ResponseV1::Unpublished { spec, node });
        }
        if !live {
            return Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!("no route {spec} is published on that node; see `hearthctl routes`"),
            ));
        }
        self.write(Body::Route(Route {
            spec: spec.clone(),
            node,
            target: None,
            proxy_protocol: false,
            container: None,
            tls: Default::default(),
        }))?;
        Ok(ResponseV1::Unpublished { spec, node })
    }

    /// Member names by node, looked up once per command rather than once per route.
    fn member_names(&self) -> HashMap<NodeId, String> {
        self.member_rows()
            .into_iter()
            .map(|r| (r.node, r.name))
            .collect()
    }

    fn row(&self, names: &HashMap<NodeId, String>, record: &Record, route: Route) -> RouteRowV1 {
        RouteRowV1 {
            node_name: names.get(&route.node).cloned().unwrap_or_default(),
            spec: route.spec,
            node: route.node,
            target: route.target.unwrap_or_default(),
            updated_ms: record.hlc.millis,
            stored_ms: self
                .store
                .arrival_ms(&record.id())
                .ok()
                .flatten()
                .unwrap_or(0),
            author: record.author,
            proxy_protocol: route.proxy_protocol,
            container: route.container,
            tls: route.tls,
        }
    }

    /// Live routes of current members, in key order.
    pub(super) fn route_rows(&self) -> Result<Vec<RouteRowV1>, ApiError> {
        let names = self.member_names();
        let mut rows = Vec::new();
        for (record, route) in self.store.routes()? {
            if route.target.is_none() || !self.membership.is_member(&route.node) {
                continue;
            }
            rows.push(self.row(&names, &record, route));
        }
        Ok(rows)
    }
}
