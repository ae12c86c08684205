//! `h2hop-certs`: writes a development PKI for the front ⇄ sidecar mutual TLS
//! hop as PEM files. Args → [`h2hop_certs::DevPki::generate`] →
//! [`h2hop_certs::DevPki::write_to`] → the written paths on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use h2hop_certs::{DEFAULT_SERVER_SANS, DevPki};

/// Generate a development CA, a sidecar server certificate and a front client
/// certificate for h2hop's mutual TLS hop.
///
/// Writes ca.pem, sidecar.pem, sidecar-key.pem, front.pem and front-key.pem
/// into DIR (key files with mode 0600). The CA private key is never written:
/// to add a name, generate a new set. For development and tests only.
#[derive(Debug, Parser)]
#[command(name = "h2hop-certs", version)]
struct Args {
    /// Directory to write the PEM files into (created if missing).
    #[arg(long, value_name = "DIR", env = "H2HOP_CERTS_OUT")]
    out: PathBuf,

    /// Name the sidecar's certificate is valid for: an IP address or a DNS
    /// name. Repeat the flag (or comma-separate in the env var) for several.
    #[arg(
        long = "san",
        value_name = "NAME",
        env = "H2HOP_CERTS_SAN",
        value_delimiter = ',',
        default_values = DEFAULT_SERVER_SANS.iter().copied(),
    )]
    sans: Vec<String>,

    /// A URI SAN for the front's client certificate, its workload identity
    /// (such as `spiffe://trust-domain/front`), for sidecars that allow
    /// fronts by SAN. Repeat the flag (or comma-separate in the env var)
    /// for several.
    #[arg(
        long = "front-uri-san",
        value_name = "URI",
        env = "H2HOP_CERTS_FRONT_URI_SAN",
        value_delimiter = ','
    )]
    front_uri_sans: Vec<String>,

    /// Overwrite existing files instead of refusing.
    #[arg(long, env = "H2HOP_CERTS_FORCE")]
    force: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pki = DevPki::generate_with(&args.sans, &args.front_uri_sans)
        .context("generating the development PKI")?;
    let written = pki
        .write_to(&args.out, args.force)
        .with_context(|| format!("writing certificates to {}", args.out.display()))?;

    // Paths go to stdout, one per line, so scripts can consume them.
    let mut out = std::io::stdout().lock();
    for path in &written {
        writeln!(out, "{}", path.display()).context("writing to stdout")?;
    }
    eprintln!(
        "sidecar certificate valid for: {}; the CA key was not kept",
        args.sans.join(", ")
    );
    if !args.front_uri_sans.is_empty() {
        eprintln!(
            "front certificate identities: {}",
            args.front_uri_sans.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn args_are_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn san_defaults_to_localhost_and_loopback() {
        let args = Args::try_parse_from(["h2hop-certs", "--out", "x"]).unwrap();
        assert_eq!(args.sans, ["localhost", "127.0.0.1"]);
        assert!(args.front_uri_sans.is_empty());
        assert!(!args.force);
    }

    #[test]
    fn san_is_repeatable() {
        let args = Args::try_parse_from([
            "h2hop-certs",
            "--out",
            "x",
            "--san",
            "a",
            "--san",
            "10.0.0.1",
        ])
        .unwrap();
        assert_eq!(args.sans, ["a", "10.0.0.1"]);
    }

    #[test]
    fn front_uri_san_is_repeatable() {
        let args = Args::try_parse_from([
            "h2hop-certs",
            "--out",
            "x",
            "--front-uri-san",
            "spiffe://a/front",
            "--front-uri-san",
            "spiffe://b/front",
        ])
        .unwrap();
        assert_eq!(
            args.front_uri_sans,
            ["spiffe://a/front", "spiffe://b/front"]
        );
    }

    #[test]
    fn out_is_required() {
        assert!(Args::try_parse_from(["h2hop-certs"]).is_err());
    }
}
