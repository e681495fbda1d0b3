//! What the policy and the access log see of one HTTP/2 stream.

use http::Request;

use crate::access_log::L7Protocol;
use crate::filter::{L7Request, LogFields};
use crate::policy::{CompiledPolicy, HttpRequestView};

#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: String,
    pub path: String,
    pub authority: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl H2Request {
    pub fn from_request<B>(request: &Request<B>) -> Self {
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                request
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            });
        H2Request {
            method: request.method().as_str().to_string(),
            path: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            authority,
            headers,
        }
    }

    pub fn is_grpc(&self) -> bool {
        self.headers
            .iter()
            .any(|(name, value)| name == "content-type" && value.starts_with("application/grpc"))
    }
}

impl L7Request for H2Request {
    fn protocol(&self) -> L7Protocol {
        L7Protocol::Http2
    }

    fn allowed_by(&self, policy: &CompiledPolicy, remote_identity: u32) -> bool {
        let view = HttpRequestView::new(
            &self.method,
            &self.path,
            self.authority.as_deref(),
            &self.headers,
        );
        policy.allows_http(remote_identity, &view)
    }

    fn log_fields(&self) -> LogFields {
        LogFields {
            method: self.method.clone(),
            path: self.path.clone(),
            host: self.authority.clone(),
            topics: Vec::new(),
            dns: None,
        }
    }
}
