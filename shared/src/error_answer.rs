//! What a client reads when a request fails, in both binaries: the body of
//! an error answer, and the request id that ties it to the log line holding
//! the cause.
//!
//! A server error (5xx) says only its status and the id: its cause chain
//! names sidecar and app addresses, OS errors and TLS failure reasons,
//! which are the operator's to read, not any client's. A client error (4xx)
//! says what was wrong with the request, which names nothing of ours.
//! `--error-details` (for development) puts the whole chain in every body.
//! Each binary answers a failure with [`body`] and logs the chain with the
//! same id: the request's `X-Request-Id` (which the front always sets), or,
//! for a stream that came without one, a [`RequestId::next`].

use std::fmt;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;

/// The id of one failed request: a per-process random prefix and a
/// counter, in hex (`3f9a1c07-1b`). The prefix keeps ids of different
/// processes (and restarts) apart in merged logs; the counter makes one
/// cost an atomic add.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    prefix: u32,
    serial: u64,
}

/// This process's prefix, drawn once.
static PREFIX: LazyLock<u32> = LazyLock::new(rand::random);

/// The last serial handed out.
static SERIAL: AtomicU64 = AtomicU64::new(0);

impl RequestId {
    /// A fresh id, never handed out before by this process.
    pub fn next() -> Self {
        Self {
            prefix: *PREFIX,
            // Relaxed: only uniqueness matters, not order between threads.
            serial: SERIAL.fetch_add(1, Ordering::Relaxed) + 1,
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}-{:x}", self.prefix, self.serial)
    }
}

/// The body of an error answer from `who` (`h2hop-front`): for a 5xx, the
/// status's fixed text unless `details` is set; otherwise `detail`, the
/// error's cause chain. Always the request `id`, and a final newline.
pub fn body(who: &str, status: StatusCode, detail: &str, id: &str, details: bool) -> String {
    let text = if details || !status.is_server_error() {
        detail
    } else {
        fixed_text(status)
    };
    format!("{who}: {text} (request id {id})\n")
}

/// The fixed text of a server error status: its reason phrase in lower case.
fn fixed_text(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_GATEWAY => "bad gateway",
        StatusCode::GATEWAY_TIMEOUT => "gateway timeout",
        StatusCode::SERVICE_UNAVAILABLE => "service unavailable",
        StatusCode::NOT_IMPLEMENTED => "not implemented",
        _ => "internal server error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str =
        "cannot connect to sidecar 10.0.0.7:8443: Connection refused (os error 111)";

    #[test]
    fn ids_are_distinct_and_share_the_process_prefix() {
        let (first, second) = (RequestId::next(), RequestId::next());
        assert_ne!(first, second);
        let (first, second) = (first.to_string(), second.to_string());
        let prefix = |id: &str| id.split_once('-').map(|(prefix, _)| prefix.to_owned());
        assert_eq!(prefix(&first), prefix(&second));
        assert_eq!(prefix(&first).map(|prefix| prefix.len()), Some(8));
        assert!(first.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
    }

    #[test]
    fn a_server_error_body_says_the_status_and_the_id_only() {
        let id = RequestId::next();
        let text = body(
            "h2hop-front",
            StatusCode::BAD_GATEWAY,
            CHAIN,
            &id.to_string(),
            false,
        );
        assert_eq!(
            text,
            format!("h2hop-front: bad gateway (request id {id})\n")
        );
        let text = body(
            "h2hop-sidecar",
            StatusCode::GATEWAY_TIMEOUT,
            CHAIN,
            &id.to_string(),
            false,
        );
        assert_eq!(
            text,
            format!("h2hop-sidecar: gateway timeout (request id {id})\n")
        );
    }

    #[test]
    fn details_put_the_chain_in_the_body() {
        let id = RequestId::next();
        let text = body(
            "h2hop-front",
            StatusCode::BAD_GATEWAY,
            CHAIN,
            &id.to_string(),
            true,
        );
        assert_eq!(text, format!("h2hop-front: {CHAIN} (request id {id})\n"));
    }

    #[test]
    fn a_client_error_body_says_what_was_wrong() {
        let id = RequestId::next();
        let reason = "bad request: invalid :protocol";
        let text = body(
            "h2hop-sidecar",
            StatusCode::BAD_REQUEST,
            reason,
            &id.to_string(),
            false,
        );
        assert_eq!(text, format!("h2hop-sidecar: {reason} (request id {id})\n"));
    }
}
