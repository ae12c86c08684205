//! TCP tunnels across the hop: how the front asks a sidecar for a TCP
//! connection to a target, and how the sidecar reads the target back.
//!
//! Two forms are spoken ([`ConnectForm`]):
//! - [`ConnectForm::Classic`], the front's default: `CONNECT` with the
//!   target as `:authority` and no `:scheme` or `:path` (RFC 9113 §8.5).
//!   DATA frames carry the TCP bytes as they are, END_STREAM is the FIN.
//!   It is what Envoy's `tunneling_config` sends, needs no SETTINGS from
//!   the peer, and adds nothing to the bytes.
//! - [`ConnectForm::ConnectTcp`]: extended CONNECT (RFC 8441 §4) with
//!   `:protocol connect-tcp`, `:scheme https`, the sidecar as `:authority`
//!   and the target in the well-known template path
//!   `/.well-known/masque/tcp/{host}/{port}/` (Template-Driven HTTP CONNECT
//!   Proxying for TCP), with `capsule-protocol: ?1` (RFC 9297 §3.4). Its
//!   bytes travel in capsules (see the capsule relay).
//!
//! [`target_of`] tells a sidecar which of the two a stream is, if either,
//! and the target it names.

use std::fmt;
use std::str::FromStr;

use http::header::HeaderValue;
use http::{Method, Request, Uri};

use crate::host_port::{HostPort, HostPortError};

/// The `:protocol` of the templated form.
pub const CONNECT_TCP: &str = "connect-tcp";

/// Where the templated form's path starts; `{host}/{port}/` follows.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/masque/tcp/";

/// The field that says a stream's content is capsules (RFC 9297 §3.4).
pub const CAPSULE_PROTOCOL: &str = "capsule-protocol";

/// How a TCP tunnel is asked for on the hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectForm {
    /// `CONNECT host:port` (RFC 9113 §8.5): raw bytes in DATA frames.
    #[default]
    Classic,
    /// Extended CONNECT with `:protocol connect-tcp`: capsules.
    ConnectTcp,
}

impl ConnectForm {
    /// The name the config file and the access line use.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectForm::Classic => "connect",
            ConnectForm::ConnectTcp => CONNECT_TCP,
        }
    }
}

impl fmt::Display for ConnectForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A form name that is neither `connect` nor `connect-tcp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a TCP tunnel form: write \"connect\" or \"connect-tcp\"")]
pub struct UnknownForm(pub String);

impl FromStr for ConnectForm {
    type Err = UnknownForm;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "connect" => Ok(ConnectForm::Classic),
            CONNECT_TCP => Ok(ConnectForm::ConnectTcp),
            _ => Err(UnknownForm(text.to_owned())),
        }
    }
}

/// The request head that asks for a tunnel to `target` in `form`;
/// `sidecar` is the `:authority` of the templated form (the classic form's
/// is the target itself).
pub fn request(
    form: ConnectForm,
    target: &HostPort,
    sidecar: &str,
) -> Result<Request<()>, http::Error> {
    match form {
        ConnectForm::Classic => Request::builder()
            .method(Method::CONNECT)
            .uri(Uri::builder().authority(target.as_str()).build()?)
            .body(()),
        ConnectForm::ConnectTcp => {
            let path = template_path(target);
            let uri = Uri::builder()
                .scheme("https")
                .authority(sidecar)
                .path_and_query(path)
                .build()?;
            let mut request = Request::builder()
                .method(Method::CONNECT)
                .uri(uri)
                .header(CAPSULE_PROTOCOL, HeaderValue::from_static("?1"))
                .body(())?;
            request
                .extensions_mut()
                .insert(h2::ext::Protocol::from_static(CONNECT_TCP));
            Ok(request)
        }
    }
}

/// The templated form's path for `target`: the host percent-encoded where
/// it is not unreserved (RFC 6570 simple expansion, so an IPv6 address
/// goes without brackets and with `%3A` for each colon).
pub fn template_path(target: &HostPort) -> String {
    let mut path = String::from(WELL_KNOWN_PREFIX);
    for byte in target.host().bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            path.push(char::from(byte));
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path.push('/');
    path.push_str(&target.port().to_string());
    path.push('/');
    path
}

/// Why a TCP CONNECT does not name a usable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A classic CONNECT without `:authority`.
    #[error("CONNECT without :authority")]
    NoAuthority,
    /// The target is not `host:port`.
    #[error("bad CONNECT target")]
    BadTarget(#[source] HostPortError),
    /// A `connect-tcp` path that is not the well-known template.
    #[error("{0:?} is not /.well-known/masque/tcp/{{host}}/{{port}}/")]
    BadPath(String),
}

/// Which TCP form `request` is and the target it names: `None` for a
/// stream that is no TCP tunnel (not CONNECT, or another `:protocol`).
pub fn target_of<B>(request: &Request<B>) -> Option<Result<(ConnectForm, HostPort), TargetError>> {
    if request.method() != Method::CONNECT {
        return None;
    }
    match request.extensions().get::<h2::ext::Protocol>() {
        None => Some(classic_target(request.uri()).map(|target| (ConnectForm::Classic, target))),
        Some(protocol) if protocol.as_str() == CONNECT_TCP => {
            let path = request.uri().path();
            Some(templated_target(path).map(|target| (ConnectForm::ConnectTcp, target)))
        }
        Some(_) => None,
    }
}

fn classic_target(uri: &Uri) -> Result<HostPort, TargetError> {
    let authority = uri.authority().ok_or(TargetError::NoAuthority)?;
    authority.as_str().parse().map_err(TargetError::BadTarget)
}

/// `/.well-known/masque/tcp/{host}/{port}/` → `host:port`, with an IPv6
/// host put back in brackets.
fn templated_target(path: &str) -> Result<HostPort, TargetError> {
    let bad = || TargetError::BadPath(path.to_owned());
    let rest = path.strip_prefix(WELL_KNOWN_PREFIX).ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').ok_or_else(bad)?;
    let (host, port) = rest.split_once('/').ok_or_else(bad)?;
    if port.contains('/') || host.is_empty() {
        return Err(bad());
    }
    let host = percent_decode(host).ok_or_else(bad)?;
    let text = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    text.parse().map_err(TargetError::BadTarget)
}

/// `%XX` escapes decoded; `None` for a bad escape, or for a result that
/// is not a plain host (no `/`, `[`, `]`, `%`, space or control byte).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let host = String::from_utf8(out).ok()?;
    let plain = host
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"/[]%@".contains(&b));
    plain.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(text: &str) -> HostPort {
        text.parse().unwrap()
    }

    #[test]
    fn the_classic_form_names_the_target_as_authority_and_nothing_else() {
        let request = request(
            ConnectForm::Classic,
            &target("127.0.0.1:6379"),
            "sidecar:8443",
        )
        .unwrap();
        assert_eq!(request.method(), Method::CONNECT);
        assert_eq!(request.uri().to_string(), "127.0.0.1:6379");
        assert!(request.uri().scheme().is_none());
        assert!(request.extensions().get::<h2::ext::Protocol>().is_none());
        let (form, read) = target_of(&request).unwrap().unwrap();
        assert_eq!(
            (form, read.as_str()),
            (ConnectForm::Classic, "127.0.0.1:6379")
        );
    }

    #[test]
    fn the_templated_form_round_trips_names_and_addresses() {
        for text in [
            "db.internal:5432",
            "127.0.0.1:22",
            "[::1]:6379",
            "[fd00::7]:1",
        ] {
            let request = request(ConnectForm::ConnectTcp, &target(text), "sidecar:8443").unwrap();
            let protocol = request.extensions().get::<h2::ext::Protocol>().unwrap();
            assert_eq!(protocol.as_str(), CONNECT_TCP);
            assert_eq!(request.uri().authority().unwrap().as_str(), "sidecar:8443");
            assert_eq!(request.headers()[CAPSULE_PROTOCOL], "?1");
            let (form, read) = target_of(&request).unwrap().unwrap();
            assert_eq!((form, read.as_str()), (ConnectForm::ConnectTcp, text));
        }
        let path = template_path(&target("[::1]:6379"));
        assert_eq!(path, "/.well-known/masque/tcp/%3A%3A1/6379/");
    }

    #[test]
    fn bad_template_paths_are_refused() {
        for path in [
            "/.well-known/masque/tcp/host/6379",
            "/.well-known/masque/tcp/host/",
            "/.well-known/masque/tcp//6379/",
            "/.well-known/masque/tcp/a/b/6379/",
            "/.well-known/masque/tcp/a%2Fb/6379/",
            "/.well-known/masque/tcp/a%zz/6379/",
            "/.well-known/masque/tcp/host/0/",
            "/other/host/6379/",
        ] {
            assert!(templated_target(path).is_err(), "{path}");
        }
    }

    #[test]
    fn other_streams_are_no_tcp_tunnel() {
        let get = Request::get("https://a/").body(()).unwrap();
        assert!(target_of(&get).is_none());
        let mut websocket = Request::builder()
            .method(Method::CONNECT)
            .uri("https://a/chat")
            .body(())
            .unwrap();
        websocket
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        assert!(target_of(&websocket).is_none());
        let bad = Request::builder()
            .method(Method::CONNECT)
            .uri("/x")
            .body(())
            .unwrap();
        assert_eq!(target_of(&bad), Some(Err(TargetError::NoAuthority)));
    }

    #[test]
    fn form_names_parse_and_print() {
        for form in [ConnectForm::Classic, ConnectForm::ConnectTcp] {
            assert_eq!(form.as_str().parse::<ConnectForm>(), Ok(form));
        }
        assert!(
            "tcp"
                .parse::<ConnectForm>()
                .unwrap_err()
                .to_string()
                .contains("connect-tcp")
        );
    }
}
