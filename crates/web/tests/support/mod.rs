//! Requests through the router for chime-web's tests, written once.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// `GET uri` as a browser on the same machine sends it: (status, body).
pub async fn get(app: &axum::Router, uri: &str) -> (StatusCode, String) {
    let req = Request::builder().uri(uri).header("host", "127.0.0.1:8080").body(Body::empty()).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

/// [`get`] again until `done` holds for the answer (work on other tasks
/// catches up), failing after 10 s naming `what` and the last answer.
pub async fn get_until(
    app: &axum::Router,
    uri: &str,
    what: &str,
    done: impl Fn(StatusCode, &str) -> bool,
) -> (StatusCode, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = get(app, uri).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(tokio::time::Instant::now() < deadline, "GET {uri} never showed {what}; last: {status} {body}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
