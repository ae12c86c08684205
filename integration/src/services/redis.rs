//! redis-server on 127.0.0.1 with no persistence, `redis-cli` /
//! `redis-benchmark` aimed at any address, and [`RespClient`], a client
//! that checks replies byte for byte. Part of [`crate::services`].

use std::net::SocketAddr;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::{Programs, Service, client, start_on_free_port};
use crate::process::{Output, Process};
use crate::scratch::Scratch;

/// redis-server on 127.0.0.1, no persistence.
pub struct Redis {
    /// Where it accepts.
    pub addr: SocketAddr,
    programs: Programs,
    _process: Process,
    _scratch: Scratch,
}

impl Redis {
    /// Starts redis-server, or `None` (after a loud line) when its
    /// programs are missing.
    pub async fn start_or_skip(test: &str) -> anyhow::Result<Option<Redis>> {
        let Some(programs) = Service::Redis.programs_or_skip(test)? else {
            return Ok(None);
        };
        let scratch = Scratch::create("redis")?;
        let server = programs.get("redis-server")?.to_owned();
        let dir = scratch.dir().to_owned();
        let (addr, process) = start_on_free_port("redis-server", "Ready to accept", |port| {
            let mut command = std::process::Command::new(&server);
            command.arg("--port").arg(port.to_string());
            command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
            command.arg("--dir").arg(&dir);
            Process::spawn("redis-server", &mut command, Output::Lines)
        })
        .await?;
        Ok(Some(Redis {
            addr,
            programs,
            _process: process,
            _scratch: scratch,
        }))
    }

    /// `redis-benchmark` or `redis-cli` aimed at `addr`, with `args`.
    pub fn client(
        &self,
        program: &str,
        addr: SocketAddr,
        args: &[&str],
    ) -> anyhow::Result<tokio::process::Command> {
        let mut command = client(self.programs.get(program)?, &["-h", &addr.ip().to_string()]);
        command.arg("-p").arg(addr.port().to_string()).args(args);
        Ok(command)
    }
}

/// A reply of the Redis protocol (RESP2) that [`RespClient`] reads; arrays,
/// which the tests' commands do not get, are an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:42`.
    Integer(i64),
    /// `$n` and n bytes, `None` for `$-1` (no such key).
    Bulk(Option<Vec<u8>>),
}

/// A Redis client written to the protocol (RESP2), so that a test checks
/// every reply byte for byte, pipelined or not.
pub struct RespClient {
    stream: BufReader<TcpStream>,
}

impl RespClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RespClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to redis at {addr}"))?;
        Ok(RespClient {
            stream: BufReader::new(stream),
        })
    }

    /// Sends every command of `commands` in one write, without waiting for
    /// replies (pipelining); read them with [`RespClient::reply`].
    pub async fn send(&mut self, commands: &[Vec<&[u8]>]) -> anyhow::Result<()> {
        let mut out = Vec::new();
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for arg in args {
                out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
                out.extend_from_slice(arg);
                out.extend_from_slice(b"\r\n");
            }
        }
        let stream = self.stream.get_mut();
        stream.write_all(&out).await.context("sending commands")
    }

    /// Reads the next reply.
    pub async fn reply(&mut self) -> anyhow::Result<Reply> {
        let line = self.line().await?;
        let (kind, rest) = line.split_at(1);
        let number = || -> anyhow::Result<i64> {
            rest.parse()
                .with_context(|| format!("bad number in {line:?}"))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Integer(number()?),
            "$" => match usize::try_from(number()?) {
                Err(_) => Reply::Bulk(None),
                Ok(len) => {
                    let mut value = vec![0; len + 2];
                    self.stream
                        .read_exact(&mut value)
                        .await
                        .context("reading a bulk reply")?;
                    if value.split_off(len) != b"\r\n" {
                        bail!("bulk reply of {len} bytes not ended by CRLF");
                    }
                    Reply::Bulk(Some(value))
                }
            },
            _ => bail!("unexpected reply {line:?}"),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        self.send(&[args.to_vec()]).await?;
        self.reply().await
    }

    /// One CRLF-ended line, without the CRLF; an error at the end of the
    /// stream.
    async fn line(&mut self) -> anyhow::Result<String> {
        let mut line = Vec::new();
        self.stream
            .read_until(b'\n', &mut line)
            .await
            .context("reading a reply")?;
        let Some(line) = line.strip_suffix(b"\r\n") else {
            bail!(
                "connection closed in a reply: {:?}",
                String::from_utf8_lossy(&line)
            );
        };
        if line.is_empty() {
            bail!("empty reply line");
        }
        String::from_utf8(line.to_vec()).context("reply line not UTF-8")
    }
}
