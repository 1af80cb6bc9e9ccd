//! JSON answers, the same on the ingest address and on the dashboard's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// `body` as compact JSON, with `status`.
pub fn answer(status: StatusCode, body: &impl Serialize) -> Response {
    let json = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    with_json(status, json)
}

/// `body` as indented JSON and a newline, as `report --json` prints it.
pub fn pretty(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_string_pretty(body) {
        Ok(text) => with_json(status, (text + "\n").into_bytes()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `{"error": …}` with `status`.
pub fn problem(status: StatusCode, error: &str) -> Response {
    answer(status, &serde_json::json!({ "error": error }))
}

fn with_json(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}
