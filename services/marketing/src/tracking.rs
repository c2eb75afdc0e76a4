//! The tracking listener: plain HTTP on a port of its own, for mail clients
//! and browsers, with no account: every link is signed (see `engagement`).
//!
//! - `GET /o/{token}`: the open image (a 1x1 GIF, whatever happens, so a
//!   mail client never shows a broken image).
//! - `GET /c/{token}?b=..&u=..`: a click, redirected to `u` only if the
//!   link bound it (never an open redirect).
//! - `GET /u?token=..`: the unsubscribe page, asking to confirm.
//! - `POST /u?token=..`: unsubscribes, for the page's form and for a mail
//!   client's RFC 8058 one-click POST (`List-Unsubscribe=One-Click`).

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use tokio::{net::TcpListener, sync::watch};

use crate::engagement::Tracker;

/// A transparent 1x1 GIF.
const PIXEL: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

/// Serves the tracking routes on `listener` until `stopping` turns true.
pub fn serve(listener: TcpListener, tracker: Tracker, mut stopping: watch::Receiver<bool>) {
    let routes = Router::new()
        .route("/o/{token}", get(opened))
        .route("/c/{token}", get(clicked))
        .route("/u", get(confirm_page).post(unsubscribe))
        .with_state(tracker);
    tokio::spawn(async move {
        let stopped = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, routes)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "the tracking listener failed");
        }
    });
}

async fn opened(State(tracker): State<Tracker>, Path(token): Path<String>) -> Response {
    if let Err(error) = tracker.opened(&token).await {
        tracing::debug!(%error, "an open not recorded");
    }
    (
        [
            (header::CONTENT_TYPE, "image/gif"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PIXEL,
    )
        .into_response()
}

async fn clicked(
    State(tracker): State<Tracker>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.unwrap_or_default();
    let (target, binding) = (param(&query, "u"), param(&query, "b"));
    match tracker
        .clicked(
            &token,
            target.as_deref().unwrap_or_default(),
            binding.as_deref().unwrap_or_default(),
        )
        .await
    {
        Ok(target) => Redirect::to(&target).into_response(),
        Err(_) => page(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "It may have expired.",
        ),
    }
}

async fn confirm_page(RawQuery(query): RawQuery) -> Response {
    let Some(token) = param(&query.unwrap_or_default(), "token") else {
        return page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "It names no subscription.",
        );
    };
    let form = format!(
        r#"<form method="post" action="?token={}"><button type="submit">Unsubscribe</button></form>"#,
        escape(&token)
    );
    page(StatusCode::OK, "Unsubscribe?", &form)
}

async fn unsubscribe(
    State(tracker): State<Tracker>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    // The token is in the link (one-click POSTs it there), or in a form body.
    let token = param(&query.unwrap_or_default(), "token")
        .or_else(|| param(&String::from_utf8_lossy(&body), "token"));
    let Some(token) = token else {
        return page(
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "It names no subscription.",
        );
    };
    match tracker.unsubscribe(&token).await {
        Ok(_) => page(
            StatusCode::OK,
            "You are unsubscribed",
            "You will not receive these emails any more.",
        ),
        Err(crm_shared::error::ApiError::PermissionDenied(_)) => page(
            StatusCode::FORBIDDEN,
            "This link is not valid",
            "It may have expired.",
        ),
        Err(error) => {
            tracing::warn!(%error, "an unsubscribe failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                "We could not record this just now.",
            )
        }
    }
}

/// A small HTML page.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{body}</p></body></html>"
    );
    (status, Html(html)).into_response()
}

/// The decoded value of `name` in a query string or form body.
fn param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_decoded() {
        let query = "b=abc&u=https%3A%2F%2Fa.example%2Fx%3Fy%3D1%26z%3D%C3%A4&t=a+b";
        assert_eq!(
            param(query, "u").as_deref(),
            Some("https://a.example/x?y=1&z=ä")
        );
        assert_eq!(param(query, "t").as_deref(), Some("a b"));
        assert_eq!(param(query, "missing"), None);
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        // Never a panic on what a stranger posts.
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("%"), "%");
    }
}
