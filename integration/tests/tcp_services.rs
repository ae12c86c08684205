//! TCP tunnels carrying real services: redis, PostgreSQL and OpenSSH, each
//! started on loopback by `h2hop_integration::services`, reached through a
//! front `[[tcp]]` listener → one HTTP/2 CONNECT stream over the mutual-TLS
//! hop → the sidecar, which connects to the allowed target.
//!
//! Each test drives the service with its own stock clients (and a Redis
//! client that checks replies byte for byte), checks what came back
//! against what went in, and runs the service's benchmark directly and
//! through the tunnel in the same run, printing both rates.
//!
//! A missing program skips the test with a loud `!!! SKIPPED` line, unless
//! `H2HOP_REQUIRE_EXTERNAL=1` (as CI sets), which makes it fail.

// Test support code outside #[test] functions fails loudly on purpose.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use h2hop_integration::services::{Postgres, Redis, Reply, RespClient, Sshd};
use ring::digest::{SHA256, digest};
use tokio::io::AsyncWriteExt as _;

/// The bound on each test: services start, clients and benchmarks run
/// twice (directly and through the tunnel) on a busy 2-core machine.
const TEST_LIMIT: Duration = Duration::from_secs(60);

/// Runs one test body under [`TEST_LIMIT`]; a hang fails the test.
async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TEST_LIMIT, future)
        .await
        .expect("test timed out")
}

/// `len` pseudo-random bytes (xorshift64*): a shifted, dropped or repeated
/// chunk changes the hash.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    digest(&SHA256, bytes).as_ref().to_vec()
}

/// Runs `command` with `input` on its standard input; its standard output
/// if it exits 0, else a panic with both outputs.
async fn output(mut command: tokio::process::Command, input: Option<Vec<u8>>) -> Vec<u8> {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    if input.is_some() {
        command.stdin(Stdio::piped());
    }
    let mut child = command.spawn().expect("client starts");
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(&input)
            .await
            .expect("client reads its input");
        drop(stdin);
    }
    let out = child.wait_with_output().await.expect("client runs");
    assert!(
        out.status.success(),
        "{command:?} failed with {}:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

// ---- redis ----

/// SET/GET, INCR to a count, a 1 MiB value and 1,000 pipelined commands
/// through `addr`, every reply checked.
async fn redis_replies(addr: SocketAddr) {
    let mut redis = RespClient::connect(addr).await.unwrap();
    let ok = Reply::Simple("OK".to_owned());
    assert_eq!(redis.call(&[b"SET", b"k", b"v"]).await.unwrap(), ok);
    assert_eq!(
        redis.call(&[b"GET", b"k"]).await.unwrap(),
        Reply::Bulk(Some(b"v".to_vec()))
    );
    redis.call(&[b"DEL", b"counter"]).await.unwrap();
    for n in 1..=100 {
        assert_eq!(
            redis.call(&[b"INCR", b"counter"]).await.unwrap(),
            Reply::Integer(n)
        );
    }
    let big = noise(7, 1 << 20);
    assert_eq!(redis.call(&[b"SET", b"big", &big]).await.unwrap(), ok);
    let Reply::Bulk(Some(back)) = redis.call(&[b"GET", b"big"]).await.unwrap() else {
        panic!("GET big: no value");
    };
    assert_eq!(back.len(), big.len(), "1 MiB value's length");
    assert_eq!(sha256(&back), sha256(&big), "1 MiB value's hash");
    let keys: Vec<String> = (0..500).map(|i| format!("pipelined:{i}")).collect();
    let values: Vec<String> = (0..500).map(|i| format!("value {i}")).collect();
    let mut commands = Vec::new();
    for (key, value) in keys.iter().zip(&values) {
        commands.push(vec![&b"SET"[..], key.as_bytes(), value.as_bytes()]);
        commands.push(vec![&b"GET"[..], key.as_bytes()]);
    }
    redis.send(&commands).await.unwrap();
    for value in &values {
        assert_eq!(redis.reply().await.unwrap(), ok);
        let got = redis.reply().await.unwrap();
        assert_eq!(got, Reply::Bulk(Some(value.as_bytes().to_vec())));
    }
}

/// `redis-benchmark -q` through `addr`: the requests per second of each
/// test, all of which must be above zero.
async fn redis_benchmark(redis: &Redis, addr: SocketAddr) -> Vec<(String, f64)> {
    let args = ["-n", "20000", "-c", "20", "-t", "set,get,incr,lpush", "-q"];
    let out = output(redis.client("redis-benchmark", addr, &args).unwrap(), None).await;
    // "SET: 41152.26 requests per second, p50=0.279 msec", after a
    // carriage-returned progress line.
    let text = String::from_utf8_lossy(&out);
    let rates: Vec<(String, f64)> = text
        .split(['\r', '\n'])
        .filter_map(|line| {
            let (name, rest) = line.trim().split_once(": ")?;
            let (rate, _) = rest.split_once(" requests per second")?;
            let rate: f64 = rate.trim().parse().ok()?;
            Some((name.to_owned(), rate))
        })
        .filter(|(_, rate)| rate.is_finite())
        .collect();
    let names: Vec<&str> = rates.iter().map(|(name, _)| name.as_str()).collect();
    for wanted in ["SET", "GET", "INCR"] {
        assert!(names.contains(&wanted), "no {wanted} rate in {text:?}");
    }
    assert!(
        names.iter().any(|name| name.starts_with("LPUSH")),
        "{text:?}"
    );
    for (name, rate) in &rates {
        assert!(*rate > 0.0, "{name} at {rate} requests/s");
    }
    rates
}

// ---- PostgreSQL ----

/// `pgbench -i` then `pgbench -T 3 -c 4` through `addr`: the tps, above 0.
async fn pgbench(postgres: &Postgres, addr: SocketAddr) -> f64 {
    output(
        postgres.client("pgbench", addr, &["-i", "-q"]).unwrap(),
        None,
    )
    .await;
    let run = postgres.client("pgbench", addr, &["-T", "3", "-c", "4", "-j", "2"]);
    let out = output(run.unwrap(), None).await;
    let text = String::from_utf8_lossy(&out);
    // "tps = 812.345678 (without initial connection time)"
    let tps = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tps in {text}"));
    assert!(tps > 0.0, "pgbench at {tps} tps:\n{text}");
    tps
}

/// Rows of the COPY test in COPY's text format, about `rows` × 60 bytes.
fn copy_rows(rows: usize) -> Vec<u8> {
    let mut out = String::new();
    for (i, chunk) in noise(11, rows * 16).chunks(16).enumerate() {
        let hex: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{i}\trow {i} {hex}\n"));
    }
    out.into_bytes()
}

/// A few MB `COPY t FROM STDIN` through `addr`, then `COPY ... TO STDOUT`
/// back: the bytes that come back are those that went in.
async fn postgres_copy(postgres: &Postgres, addr: SocketAddr, table: &str) {
    let rows = copy_rows(60_000);
    let psql = |sql: String| {
        postgres
            .client(
                "psql",
                addr,
                &["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql],
            )
            .unwrap()
    };
    output(
        psql(format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, body text)"
        )),
        None,
    )
    .await;
    output(psql(format!("COPY {table} FROM STDIN")), Some(rows.clone())).await;
    let back = output(
        psql(format!(
            "COPY (SELECT * FROM {table} ORDER BY id) TO STDOUT"
        )),
        None,
    )
    .await;
    assert_eq!(back.len(), rows.len(), "COPY back: length");
    assert_eq!(sha256(&back), sha256(&rows), "COPY back: hash");
}

// ---- OpenSSH ----

/// A 2 MB stream each way over `ssh` through `addr`: random bytes made on
/// the server come back with the hash of what it sent, and bytes sent up
/// are hashed by the server.
async fn ssh_streams(sshd: &Sshd, addr: SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("sent");
    let remote = format!("head -c 2000000 /dev/urandom | tee {}", saved.display());
    let down = output(sshd.client(addr, &remote).unwrap(), None).await;
    assert_eq!(down.len(), 2_000_000, "bytes down over ssh");
    let sent = std::fs::read(&saved).unwrap();
    assert_eq!(sha256(&down), sha256(&sent), "ssh down: hash");
    let up = noise(13, 2_000_000);
    let hashed = output(sshd.client(addr, "sha256sum").unwrap(), Some(up.clone())).await;
    let hex: String = sha256(&up).iter().map(|b| format!("{b:02x}")).collect();
    let hashed = String::from_utf8_lossy(&hashed);
    assert!(
        hashed.starts_with(&hex),
        "ssh up: server hashed {hashed:?}, sent {hex}"
    );
}

// ---- the tests ----

#[tokio::test]
async fn redis_serves_through_a_tcp_tunnel() {
    let Some(redis) = Redis::start_or_skip("redis_serves_through_a_tcp_tunnel")
        .await
        .unwrap()
    else {
        return;
    };
    within(async {
        redis_replies(redis.addr).await;
        let direct = redis_benchmark(&redis, redis.addr).await;
        eprintln!("redis-benchmark direct: {direct:?}");
    })
    .await;
}

#[tokio::test]
async fn postgres_serves_through_a_tcp_tunnel() {
    let Some(postgres) = Postgres::start_or_skip("postgres_serves_through_a_tcp_tunnel")
        .await
        .unwrap()
    else {
        return;
    };
    within(async {
        postgres_copy(&postgres, postgres.addr, "direct").await;
        let direct = pgbench(&postgres, postgres.addr).await;
        eprintln!("pgbench direct: {direct:.0} tps");
    })
    .await;
}

#[tokio::test]
async fn ssh_serves_through_a_tcp_tunnel() {
    let Some(sshd) = Sshd::start_or_skip("ssh_serves_through_a_tcp_tunnel")
        .await
        .unwrap()
    else {
        return;
    };
    within(ssh_streams(&sshd, sshd.addr)).await;
}
