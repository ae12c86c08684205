//! The h2hop pair as a TCP tunnel: `h2hop-front` with a `--config` file
//! holding one `[[cluster]]` (the sidecar, over h2c or mutual TLS) and one
//! `[[tcp]]` listener whose target is the app, and `h2hop-sidecar` with the
//! app on its `--tcp-allow` list. Each client connection becomes one
//! CONNECT stream on the front's pooled HTTP/2 connections, in the classic
//! form (RFC 9113 §8.5) or the `connect-tcp` one (capsules, RFC 9297); its
//! bytes pass unchanged, whatever the client speaks (HTTP/1.1 and
//! WebSocket for the echo app, h2c for the gRPC app).
//!
//! Input: the app address, the release binaries, the worker count, which
//! TCP [`Kind`] (so which hop and form) and a scratch directory (which
//! receives the front's config file and, for mTLS, the development PKI).
//! Output: a [`Plan`] for [`super::start`] whose client address is the
//! `[[tcp]]` listener.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use anyhow::bail;
use h2hop::tcp_connect::ConnectForm;
use h2hop_integration::process::free_port;
use h2hop_integration::scratch::Scratch;

use super::h2hop_pair::{LOGGING, sidecar_tls_args};
use super::hop_pki::{self, HopPki};
use super::{Binaries, Evidence, Hop, Kind, Plan, Traffic};

/// What the sidecar logs for each TCP tunnel it served in the classic
/// form: its access line with `kind="tcp"` and the form as the protocol,
/// written when the tunnel closes.
const CLASSIC_MARKS: &[&str] = &["h2hop::access", "kind=\"tcp\"", "protocol=\"connect\""];
/// [`CLASSIC_MARKS`] for the `connect-tcp` form.
const CONNECT_TCP_MARKS: &[&str] = &["h2hop::access", "kind=\"tcp\"", "protocol=\"connect-tcp\""];

/// The cluster's name in the front's config file.
const CLUSTER: &str = "sidecar";

/// Picks ports, writes `front.toml` (and the PKI for mTLS), and builds
/// `h2hop-sidecar --listen S --app APP (--h2c | --cert --key --client-ca)
/// --tcp-allow APP --workers W` and `h2hop-front --listen F --config
/// front.toml --workers W`, both logging at info as text. Clients connect
/// to the `[[tcp]]` listener, not to F.
pub(super) fn plan(
    app: SocketAddr,
    traffic: Traffic,
    bins: &Binaries,
    workers: usize,
    kind: Kind,
    scratch: &Scratch,
) -> anyhow::Result<Plan> {
    let (hop, form) = match kind {
        Kind::H2hopTcp => (Hop::H2c, ConnectForm::Classic),
        Kind::H2hopTcpMtls => (Hop::Mtls, ConnectForm::Classic),
        Kind::H2hopConnectTcp => (Hop::H2c, ConnectForm::ConnectTcp),
        other => bail!("{} is not a TCP tunnel", other.name()),
    };
    let sidecar_addr = free_port()?;
    let http_addr = free_port()?;
    let tcp_addr = free_port()?;
    let workers = workers.to_string();
    let pki = match hop {
        Hop::H2c => None,
        Hop::Mtls => Some(hop_pki::write(scratch)?),
    };

    let mut sidecar = Command::new(&bins.sidecar);
    sidecar
        .arg("--listen")
        .arg(sidecar_addr.to_string())
        .arg("--app")
        .arg(app.to_string())
        .arg("--tcp-allow")
        .arg(app.to_string());
    match &pki {
        None => {
            sidecar.arg("--h2c");
        }
        Some(pki) => sidecar_tls_args(&mut sidecar, pki),
    }

    let service = Service {
        listen: tcp_addr,
        target: app,
        form,
    };
    let config = front_config(sidecar_addr, &service, pki.as_ref())?;
    let mut front = Command::new(&bins.front);
    front
        .arg("--listen")
        .arg(http_addr.to_string())
        .arg("--config")
        .arg(scratch.write("front.toml", &config)?);
    for command in [&mut sidecar, &mut front] {
        command.arg("--workers").arg(&workers).args(LOGGING);
    }

    Ok(Plan {
        sidecar,
        sidecar_addr,
        front,
        front_addr: tcp_addr,
        evidence: (traffic == Traffic::Http1).then(|| Evidence {
            log: scratch.path("sidecar.log"),
            marks: match form {
                ConnectForm::Classic => CLASSIC_MARKS,
                ConnectForm::ConnectTcp => CONNECT_TCP_MARKS,
            },
        }),
    })
}

/// The front's config file: the sidecar as the only cluster (h2c, or
/// mutual TLS with `pki`'s client certificate, the sidecar's name being
/// the endpoint's host, `127.0.0.1`, which its certificate carries) and
/// one `[[tcp]]` listener on `listen` whose streams ask the sidecar for
/// `target`, in `form`. No `[[route]]`: a TCP-only front, as a user would
/// run it (its HTTP listener answers 404).
fn front_config(
    sidecar: SocketAddr,
    service: &Service,
    pki: Option<&HopPki>,
) -> anyhow::Result<String> {
    let Service {
        listen,
        target,
        form,
    } = service;
    let cluster_tls = match pki {
        None => "h2c = true\n".to_owned(),
        Some(pki) => format!(
            "ca = {}\ncert = {}\nkey = {}\n",
            toml_path(&pki.ca)?,
            toml_path(&pki.client_cert)?,
            toml_path(&pki.client_key)?
        ),
    };
    Ok(format!(
        "[[cluster]]\n\
         name = \"{CLUSTER}\"\n\
         endpoints = [\"{sidecar}\"]\n\
         {cluster_tls}\n\
         [[tcp]]\n\
         name = \"bench-app\"\n\
         listen = \"{listen}\"\n\
         cluster = \"{CLUSTER}\"\n\
         target = \"{target}\"\n\
         form = \"{form}\"\n"
    ))
}

/// The front's one `[[tcp]]` entry.
#[derive(Debug, Clone, Copy)]
struct Service {
    /// Where clients connect.
    listen: SocketAddr,
    /// What the sidecar dials: the app.
    target: SocketAddr,
    /// How the tunnel is asked for on the hop.
    form: ConnectForm,
}

/// `path` as a TOML basic string; an error for a path that is not UTF-8
/// or holds control characters (a scratch directory never does).
fn toml_path(path: &Path) -> anyhow::Result<String> {
    let Some(text) = path.to_str() else {
        bail!("{} is not UTF-8", path.display());
    };
    if text.chars().any(char::is_control) {
        bail!("{text:?} holds control characters");
    }
    Ok(format!(
        "\"{}\"",
        text.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn service(form: ConnectForm) -> Service {
        Service {
            listen: addr("127.0.0.1:4001"),
            target: addr("127.0.0.1:4002"),
            form,
        }
    }

    #[test]
    fn h2c_config_has_a_cleartext_cluster_and_a_tcp_listener_for_the_app() {
        let service = service(ConnectForm::Classic);
        let text = front_config(addr("127.0.0.1:4000"), &service, None).unwrap();
        assert!(text.contains("endpoints = [\"127.0.0.1:4000\"]\nh2c = true\n"));
        assert!(text.contains(
            "[[tcp]]\nname = \"bench-app\"\nlisten = \"127.0.0.1:4001\"\n\
             cluster = \"sidecar\"\ntarget = \"127.0.0.1:4002\"\nform = \"connect\"\n"
        ));
        assert!(!text.contains("ca ="), "{text}");
        assert!(!text.contains("[[route]]"), "{text}");
    }

    #[test]
    fn mtls_config_names_the_pki_files_and_no_h2c() {
        let pki = HopPki {
            ca: PathBuf::from("/s/ca.pem"),
            server_cert: PathBuf::from("/s/sidecar.pem"),
            server_key: PathBuf::from("/s/sidecar-key.pem"),
            server_combined: PathBuf::new(),
            client_cert: PathBuf::from("/s/front.pem"),
            client_key: PathBuf::from("/s/front-key.pem"),
            client_combined: PathBuf::new(),
        };
        let service = service(ConnectForm::Classic);
        let text = front_config(addr("127.0.0.1:4000"), &service, Some(&pki)).unwrap();
        assert!(
            text.contains(
                "ca = \"/s/ca.pem\"\ncert = \"/s/front.pem\"\nkey = \"/s/front-key.pem\"\n"
            ),
            "{text}"
        );
        assert!(!text.contains("h2c"), "{text}");
    }

    #[test]
    fn connect_tcp_kind_asks_for_the_connect_tcp_form_over_h2c() {
        let text = front_config(
            addr("127.0.0.1:4000"),
            &service(ConnectForm::ConnectTcp),
            None,
        )
        .unwrap();
        assert!(text.ends_with("form = \"connect-tcp\"\n"), "{text}");
    }

    #[test]
    fn toml_path_escapes_quotes_and_backslashes_and_refuses_control_characters() {
        assert_eq!(
            toml_path(Path::new("/a\"b\\c")).unwrap(),
            r#""/a\"b\\c""#.to_owned()
        );
        assert!(toml_path(Path::new("/a\nb")).is_err());
    }
}
