//! The pages an edge answers with itself: unknown host, unreachable service, bad request.
//!
//! A page tells the visitor only what it can act on: the status, one generic sentence and the
//! request id. Why a service was unreachable (targets, members, tunnel errors) is never on the
//! page: it goes to the edge's log with the same request id (see [`super::http`]).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};

use super::headers::{ALLOWED_METHODS, REQUEST_ID};
use super::http::ProxyBody;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small HTML page with `status`, a title, an explanation and the request id `id`.
pub fn page(status: StatusCode, title: &str, detail: &str, id: &str) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
         <body><h1>{title}</h1><p>{}</p><p>Request id: {}</p><hr><p>Hearth edge</p></body></html>\n",
        escape(detail),
        escape(id),
        title = escape(title),
    );
    let body = Full::new(Bytes::from(html))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, value);
    }
    response
}

/// 404 for a host no member publishes.
pub fn unknown_host(host: &str, id: &str) -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        "No such service",
        &format!("No service is published for {host} on this Hearth mesh. Publish one with `hearthctl publish {host} --to ADDR:PORT`."),
        id,
    )
}

/// 502 for a service whose hosting member or target is down; the reason is logged, not shown.
pub fn unreachable(id: &str) -> Response<ProxyBody> {
    page(
        StatusCode::BAD_GATEWAY,
        "Bad gateway",
        "The service did not answer. Try again later; if it keeps failing, give the site's operator the request id below.",
        id,
    )
}

/// 400 for a request the edge does not forward (a bad or duplicate Host, a bad target).
pub fn bad_request(explain: &str, id: &str) -> Response<ProxyBody> {
    page(StatusCode::BAD_REQUEST, "Bad request", explain, id)
}

/// 405 for a method the edge never forwards (CONNECT, TRACE).
pub fn method_not_allowed(id: &str) -> Response<ProxyBody> {
    let mut response = page(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "This server does not accept that method.",
        id,
    );
    response.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(ALLOWED_METHODS),
    );
    response
}

/// 200 with a plain-text body (an ACME HTTP-01 answer).
pub fn plain_text(text: String) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

/// 308 to `location` (the same request over HTTPS; 308 keeps the method and body).
pub fn redirect(location: &str, id: &str) -> Response<ProxyBody> {
    let mut response = page(
        StatusCode::PERMANENT_REDIRECT,
        "Moved to HTTPS",
        &format!("This site is served over HTTPS: {location}"),
        id,
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}

/// 421: a request for another host on a connection terminated for one host.
pub fn misdirected(host: &str, id: &str) -> Response<ProxyBody> {
    page(
        StatusCode::MISDIRECTED_REQUEST,
        "Misdirected request",
        &format!("This connection serves another host; open a new connection for {host}."),
        id,
    )
}

/// 404: nothing here (a forwarded ACME request with a token this member does not serve).
pub fn not_found(id: &str) -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
        id,
    )
}
