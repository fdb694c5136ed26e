//! The pages an edge answers with itself: unknown host, unreachable service, bad request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};

use super::http::ProxyBody;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A small HTML page with `status`, a title and an explanation.
pub fn page(status: StatusCode, title: &str, detail: &str) -> Response<ProxyBody> {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{status} {title}</title></head>\n\
         <body><h1>{title}</h1><p>{}</p><hr><p>Hearth edge</p></body></html>\n",
        escape(detail),
        title = escape(title),
    );
    let body = Full::new(Bytes::from(html))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// 404 for a host no member publishes.
pub fn unknown_host(host: &str) -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        "No such service",
        &format!("No service is published for {host} on this Hearth mesh. Publish one with `hearthctl publish {host} --to ADDR:PORT`."),
    )
}

/// 502 for a service whose hosting member or target is down.
pub fn unreachable(host: &str, reason: &str) -> Response<ProxyBody> {
    page(
        StatusCode::BAD_GATEWAY,
        "Service unreachable",
        &format!("The service for {host} did not answer: {reason}."),
    )
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
pub fn redirect(location: &str) -> Response<ProxyBody> {
    let mut response = page(
        StatusCode::PERMANENT_REDIRECT,
        "Moved to HTTPS",
        &format!("This site is served over HTTPS: {location}"),
    );
    if let Ok(value) = hyper::header::HeaderValue::from_str(location) {
        response
            .headers_mut()
            .insert(hyper::header::LOCATION, value);
    }
    response
}

/// 421: a request for another host on a connection terminated for one host.
pub fn misdirected(host: &str) -> Response<ProxyBody> {
    page(
        StatusCode::MISDIRECTED_REQUEST,
        "Misdirected request",
        &format!("This connection serves another host; open a new connection for {host}."),
    )
}

/// 404: nothing here (a forwarded ACME request with a token this member does not serve).
pub fn not_found() -> Response<ProxyBody> {
    page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
}

/// 400: the request names no host.
pub fn no_host() -> Response<ProxyBody> {
    page(
        StatusCode::BAD_REQUEST,
        "No host",
        "The request names no valid host; send a Host header such as blog.example.com.",
    )
}
