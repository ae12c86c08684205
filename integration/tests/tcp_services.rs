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

use h2hop_integration::client::{body_bytes, full, http1_connect, request};
use h2hop_integration::harness::Pair;
use h2hop_integration::logs::Captured;
use h2hop_integration::services::{Postgres, Redis, Reply, RespClient, Sshd};
use h2hop_integration::wait::eventually_async;
use http::Method;
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
    // 5,000 requests per test: a few seconds through the debug build's
    // tunnel, where one thread runs the test, the front and the sidecar.
    let args = ["-n", "5000", "-c", "20", "-t", "set,get,incr,lpush", "-q"];
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
/// back: the bytes that come back are those that went in. Returns how
/// many bytes of rows went each way.
async fn postgres_copy(postgres: &Postgres, addr: SocketAddr, table: &str) -> u64 {
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
    rows.len() as u64
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

// ---- what the proxies saw ----

/// Status and body of `GET path` on an admin listener.
async fn admin(addr: SocketAddr, path: &str) -> String {
    let mut client = http1_connect(addr).await.unwrap();
    let get = request(Method::GET, addr, path, full("")).unwrap();
    let response = client.send_request(get).await.unwrap();
    assert_eq!(response.status(), 200, "GET {path} on {addr}");
    String::from_utf8(body_bytes(response).await.unwrap().to_vec()).unwrap()
}

/// The sum of the series of a Prometheus text exposition whose name and
/// labels start with `prefix`.
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What one proxy's access lines say of the tunnels to a target.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Lines {
    tunnels: usize,
    /// Bytes toward the target, summed.
    up: u64,
    /// Bytes from the target, summed.
    down: u64,
}

impl Lines {
    fn of(lines: &[String]) -> Lines {
        let field = |line: &String, name: &str| -> u64 {
            let value = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix(name));
            value
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line}"))
        };
        let mut seen = Lines::default();
        for line in lines {
            assert!(line.contains("status=200"), "a tunnel not opened: {line}");
            seen.tunnels += 1;
            seen.up += field(line, "bytes_up=");
            seen.down += field(line, "bytes_down=");
        }
        seen
    }

    /// What a proxy's metrics say of the same tunnels, all ended.
    fn of_metrics(text: &str, target: SocketAddr) -> Option<Lines> {
        let label = format!("target=\"{target}\"");
        let active = sum(text, &format!("h2hop_tcp_tunnels_active{{{label}}}"));
        let bytes = |direction: &str| {
            sum(
                text,
                &format!("h2hop_tcp_tunnel_bytes_total{{{label},direction=\"{direction}\"}}"),
            )
        };
        (active == 0.0).then(|| Lines {
            tunnels: sum(text, &format!("h2hop_tcp_tunnels_total{{{label},")) as usize,
            up: bytes("up") as u64,
            down: bytes("down") as u64,
        })
    }
}

/// Waits until both proxies have ended and logged at least `at_least`
/// tunnels to `target` and agree: the front's access lines (route
/// `tcp-1`), the sidecar's, and both proxies' metrics labelled by the
/// target count the same tunnels and bytes each way. Returns that count.
async fn accounted(pair: &Pair, log: &Captured, target: SocketAddr, at_least: usize) -> Lines {
    let views = || async {
        let authority = format!("authority=\"{target}\"");
        let lines = |route: &str| {
            let needles = ["h2hop::access", "kind=\"tcp\"", route, &authority];
            Lines::of(&log.lines_with(&needles))
        };
        let metrics = |admin_addr: Option<SocketAddr>| async move {
            Lines::of_metrics(&admin(admin_addr.unwrap(), "/metrics").await, target)
        };
        (
            lines("route=\"tcp-1\""),
            lines("route=\"-\""),
            metrics(pair.front_admin).await,
            metrics(pair.sidecar_admin).await,
        )
    };
    let agreed = eventually_async(Duration::from_secs(10), || async {
        let (front, sidecar, front_metrics, sidecar_metrics) = views().await;
        let all = (sidecar, front_metrics, sidecar_metrics) == (front, Some(front), Some(front));
        (front.tunnels >= at_least && all).then_some(front)
    });
    match agreed.await {
        Some(seen) => seen,
        None => panic!(
            "front lines, sidecar lines, front metrics and sidecar metrics never agreed on \
             {at_least}+ tunnels to {target}: {:?}\n{}",
            views().await,
            log.text()
        ),
    }
}

/// A pair whose front has one `[[tcp]]` service (`tcp-1`, the classic
/// CONNECT form) to `target`, over the default mutual-TLS hop, the target
/// on the sidecar's allow-list, both admin listeners on.
async fn tunnel_to(target: SocketAddr) -> Pair {
    Pair::builder()
        .tcp_service(target)
        .admin()
        .start()
        .await
        .unwrap()
}

// ---- the tests ----

/// redis through the tunnel: every reply right (SET/GET, INCR, a 1 MiB
/// value, 1,000 pipelined commands), redis-benchmark's four tests at
/// non-zero rates, and the tunnels logged and counted by target.
#[tokio::test]
async fn redis_serves_through_a_tcp_tunnel() {
    let (log, _guard) = Captured::install();
    within(async {
        let Some(redis) = Redis::start_or_skip("redis_serves_through_a_tcp_tunnel")
            .await
            .unwrap()
        else {
            return;
        };
        let pair = tunnel_to(redis.addr).await;
        let front = pair.front_tcp[0];
        redis_replies(front).await;
        let tunnelled = redis_benchmark(&redis, front).await;
        let direct = redis_benchmark(&redis, redis.addr).await;
        eprintln!("redis-benchmark requests/s, tunnel: {tunnelled:?}, direct: {direct:?}");
        // The reply client and redis-benchmark's 20 clients per test.
        let seen = accounted(&pair, &log, redis.addr, 1 + 4 * 20).await;
        assert!(seen.up > 1 << 20 && seen.down > 1 << 20, "{seen:?}");
    })
    .await;
}

/// PostgreSQL through the tunnel: a few MB COPY in and back unchanged,
/// pgbench's initialisation and a 3-second run at a non-zero rate, and
/// the tunnels logged and counted by target.
#[tokio::test]
async fn postgres_serves_through_a_tcp_tunnel() {
    let (log, _guard) = Captured::install();
    within(async {
        let Some(postgres) = Postgres::start_or_skip("postgres_serves_through_a_tcp_tunnel")
            .await
            .unwrap()
        else {
            return;
        };
        let pair = tunnel_to(postgres.addr).await;
        let front = pair.front_tcp[0];
        let rows = postgres_copy(&postgres, front, "copied").await;
        let tunnelled = pgbench(&postgres, front).await;
        let direct = pgbench(&postgres, postgres.addr).await;
        eprintln!("pgbench tps, tunnel: {tunnelled:.0}, direct: {direct:.0}");
        // psql three times, pgbench -i once, pgbench's 4 clients.
        let seen = accounted(&pair, &log, postgres.addr, 3 + 1 + 4).await;
        assert!(
            seen.up > rows && seen.down > rows,
            "{seen:?} for {rows} bytes of rows"
        );
    })
    .await;
}

/// OpenSSH through the tunnel: the host key checked, 2 MB each way hashed
/// the same at both ends, and the tunnels logged and counted by target.
#[tokio::test]
async fn ssh_serves_through_a_tcp_tunnel() {
    let (log, _guard) = Captured::install();
    within(async {
        let Some(sshd) = Sshd::start_or_skip("ssh_serves_through_a_tcp_tunnel")
            .await
            .unwrap()
        else {
            return;
        };
        let pair = tunnel_to(sshd.addr).await;
        ssh_streams(&sshd, pair.front_tcp[0]).await;
        let seen = accounted(&pair, &log, sshd.addr, 2).await;
        assert_eq!(seen.tunnels, 2, "{seen:?}");
        assert!(seen.up > 2_000_000 && seen.down > 2_000_000, "{seen:?}");
    })
    .await;
}
