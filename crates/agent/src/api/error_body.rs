//! Every error the API answers carries Cilium's JSON error body
//! (`{"message": ...}`), also those no handler wrote: axum's rejections of a
//! path, query string or method (plain text or empty), and the request body
//! limit. Bodies over [`MAX_REQUEST_BODY_BYTES`] are refused with 413 naming
//! the limit; when the request declares its length, before any of it is read.

use axum::{
    body::{to_bytes, Body},
    extract::Request,
    http::{header, Method, StatusCode, Uri},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};

use api::models::{ApiError, MAX_REQUEST_BODY_BYTES};

/// Longest non-JSON error body taken over as the message; axum's
/// rejections are one line.
const MAX_PLAIN_ERROR: usize = 64 * 1024;

/// Middleware: refuses declared oversized bodies up front and rewrites any
/// error answer that is not JSON into an [`ApiError`].
pub async fn guard(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = declared.filter(|&n| n > MAX_REQUEST_BODY_BYTES as u64) {
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, too_large(Some(len)));
    }
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let response = next.run(req).await;
    let failed = response.status().is_client_error() || response.status().is_server_error();
    if failed && !is_json(&response) {
        return into_json(response, &method, &uri).await;
    }
    response
}

/// An error answer with Cilium's JSON error body.
pub fn error_response(status: StatusCode, message: String) -> Response {
    (status, Json(ApiError { message })).into_response()
}

fn too_large(declared: Option<u64>) -> String {
    let limit = format!(
        "the agent's API limit of {} MiB ({MAX_REQUEST_BODY_BYTES} bytes)",
        MAX_REQUEST_BODY_BYTES >> 20
    );
    match declared {
        Some(len) => format!("request body of {len} bytes exceeds {limit}"),
        None => format!("request body exceeds {limit}"),
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

async fn into_json(response: Response, method: &Method, uri: &Uri) -> Response {
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(None)
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        format!("method {method} is not allowed on {}", uri.path())
    } else {
        let body: Body = response.into_body();
        let text = to_bytes(body, MAX_PLAIN_ERROR)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request failed")
                .to_string()
        } else {
            text
        }
    };
    let mut json = error_response(status, message);
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
}
