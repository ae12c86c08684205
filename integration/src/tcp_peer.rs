//! The two ends of a TCP tunnel in a test: a target that takes one
//! connection and runs a script on it, and a reader that tells a clean
//! end (EOF) from a reset.

use std::io::ErrorKind;
use std::net::SocketAddr;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::harness::loopback;

/// A loopback target that accepts one connection and hands it to
/// `script`; its address, and the script's task.
///
/// # Panics
/// When it cannot listen or accept: a test setup failure.
#[expect(clippy::unwrap_used, reason = "test setup fails loudly")]
pub async fn scripted_target<F, Fut, T>(script: F) -> (SocketAddr, JoinHandle<T>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send,
    T: Send + 'static,
{
    let listener = loopback().await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        script(stream).await
    });
    (addr, task)
}

/// Reads until EOF or an error: the bytes, and whether it ended in a
/// reset.
///
/// # Panics
/// On a read error other than a reset.
#[expect(clippy::panic, reason = "an unexpected error fails the test")]
pub async fn read_all(stream: &mut TcpStream) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(err) => panic!("read failed: {err}"),
        }
    }
}
