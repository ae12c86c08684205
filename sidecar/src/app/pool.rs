//! The keep-alive pool (RFC 9112 §9.3) of hyper `client::conn::http1`
//! connections that plain requests share toward the one app address; used
//! by [`crate::app::App::send`], which hands it the function that opens a
//! new connection (the pool itself knows no address).
//!
//! - checkout takes the most recently used idle connection (LIFO, so that
//!   surplus ones age out) that hyper reports ready: its last exchange is
//!   over both ways and its task waits for the next request. One the app
//!   closed, that failed, or whose response was cut short never is, and is
//!   dropped on the way. With none ready, a new one is dialed.
//! - after the response head, the connection goes back once hyper reports
//!   it ready: at once when the body came with the head, else from a small
//!   task that waits for the body to end.
//! - at most [`MAX_IDLE`] idle connections are kept; one idle for
//!   [`IDLE_TIMEOUT`] is closed by a reaper within [`REAP_EVERY`].
//! - a request that a reused connection gives back unwritten (the app
//!   closed it just as it was picked) is sent once more on a new
//!   connection: not a byte of it went out, so this is safe for any method.

use std::error::Error as StdError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;
use tracing::debug;

/// Idle connections kept. Enough for the worker pool of a typical app;
/// more would only hold the app's sockets after a burst, since LIFO
/// checkout leaves the oldest unused. Past it the oldest is closed.
const MAX_IDLE: usize = 64;

/// An idle connection is closed after this long unused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often the reaper looks for connections idle too long.
const REAP_EVERY: Duration = Duration::from_secs(5);

/// Why [`Pool::send`] failed.
#[derive(Debug)]
pub(crate) enum SendError<E> {
    /// Opening a new connection failed, as the open function said.
    Open(E),
    /// HTTP/1.1 on the connection failed.
    Http(hyper::Error),
}

/// The keep-alive pool of plain-request connections; see the module docs.
/// Generic over the request body so that tests can use simple bodies.
pub(crate) struct Pool<B> {
    idle: Mutex<Idle<B>>,
}

/// Idle connections, least recently used first.
struct Idle<B> {
    conns: Vec<IdleConn<B>>,
    /// Whether the reaper task runs (it starts with the first connection).
    reaping: bool,
}

struct IdleConn<B> {
    sender: SendRequest<B>,
    since: Instant,
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Self {
            idle: Mutex::new(Idle {
                conns: Vec::new(),
                reaping: false,
            }),
        }
    }
}

impl<B> Pool<B> {
    fn lock(&self) -> MutexGuard<'_, Idle<B>> {
        // Nothing panics while holding the lock; even so, a list of
        // connections cannot be left half-updated.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B> Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    /// Sends `request` on an idle connection, or on a new one from `open`,
    /// and returns the response head; the connection goes back to the pool
    /// once free.
    pub(crate) async fn send<E, F>(
        self: &Arc<Self>,
        open: impl Fn() -> F,
        request: Request<B>,
    ) -> Result<Response<Incoming>, SendError<E>>
    where
        F: Future<Output = Result<SendRequest<B>, E>>,
    {
        let (mut sender, reused) = match self.checkout() {
            Some(sender) => (sender, true),
            None => (open().await.map_err(SendError::Open)?, false),
        };
        let mut err = match sender.try_send_request(request).await {
            Ok(response) => {
                self.release(sender);
                return Ok(response);
            }
            Err(err) => err,
        };
        // The request comes back only if no byte of it was written. On a
        // fresh connection the app refused it outright: no second try.
        let Some(request) = err.take_message().filter(|_| reused) else {
            return Err(SendError::Http(err.into_error()));
        };
        debug!(error = %err.into_error(), "pooled app connection closed; retrying on a new one");
        let mut sender = open().await.map_err(SendError::Open)?;
        let response = sender
            .send_request(request)
            .await
            .map_err(SendError::Http)?;
        self.release(sender);
        Ok(response)
    }

    /// The most recently used idle connection that is still ready.
    fn checkout(&self) -> Option<SendRequest<B>> {
        let mut idle = self.lock();
        while let Some(conn) = idle.conns.pop() {
            // Only closing (the app's FIN, an error) makes an idle
            // connection unready: such a one is dropped here.
            if conn.sender.is_ready() {
                return Some(conn.sender);
            }
        }
        None
    }

    /// Gives `sender` back once its exchange is over, or drops it if its
    /// connection is closing (`Connection: close`, a body cut short).
    fn release(self: &Arc<Self>, mut sender: SendRequest<B>) {
        if sender.is_ready() {
            return self.checkin(sender);
        }
        if sender.is_closed() {
            return;
        }
        // The body is still coming: hyper says ready once it has ended.
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if sender.ready().await.is_ok()
                && let Some(pool) = pool.upgrade()
            {
                pool.checkin(sender);
            }
        });
    }

    fn checkin(self: &Arc<Self>, sender: SendRequest<B>) {
        let mut idle = self.lock();
        if idle.conns.len() == MAX_IDLE {
            // Dropping the sender closes the connection.
            idle.conns.remove(0);
        }
        idle.conns.push(IdleConn {
            sender,
            since: Instant::now(),
        });
        if !idle.reaping {
            idle.reaping = true;
            tokio::spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Every [`REAP_EVERY`], closes connections idle for [`IDLE_TIMEOUT`] and
/// forgets closed ones; ends with the pool.
async fn reap<B>(pool: Weak<Pool<B>>) {
    let mut ticks = tokio::time::interval_at(Instant::now() + REAP_EVERY, REAP_EVERY);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let now = Instant::now();
        pool.lock().conns.retain(|conn| {
            now.duration_since(conn.since) < IDLE_TIMEOUT && !conn.sender.is_closed()
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::time::timeout;

    use super::*;
    use hyper::client::conn::http1;
    use hyper_util::rt::TokioIo;

    use crate::Error;
    use crate::app::dial::{AppConfig, AppProtocol, open_http1};

    fn config(addr: SocketAddr) -> AppConfig {
        AppConfig {
            addr: addr.to_string(),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            upgrade_timeout: Duration::from_secs(5),
            proxy_protocol: false,
            protocol: AppProtocol::Http1,
        }
    }

    fn get() -> Request<Full<Bytes>> {
        Request::get("/")
            .header("host", "app.test")
            .body(Full::default())
            .unwrap()
    }

    /// Reads one request head on `stream` and answers it, body included,
    /// in one write: the pool's connection is ready again at once.
    async fn answer(stream: &mut TcpStream) {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let response = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        stream.write_all(response).await.unwrap();
    }

    /// Accepts one connection and answers one request on it.
    async fn accept_and_answer(listener: &TcpListener) -> TcpStream {
        let (mut stream, _) = listener.accept().await.unwrap();
        answer(&mut stream).await;
        stream
    }

    /// Sends GET / through `pool` while the app accepts one connection and
    /// answers on it; a request that fails or goes elsewhere fails the test.
    async fn exchange(
        pool: &Arc<Pool<Full<Bytes>>>,
        config: &AppConfig,
        listener: &TcpListener,
    ) -> (Bytes, TcpStream) {
        let both = async {
            tokio::join!(
                pool.send(|| open_http1(config), get()),
                accept_and_answer(listener)
            )
        };
        let (response, stream) = timeout(Duration::from_secs(5), both)
            .await
            .expect("no answer on a new connection");
        (body(response).await, stream)
    }

    async fn body(response: Result<Response<Incoming>, SendError<Error>>) -> Bytes {
        let body = response.unwrap().into_body();
        body.collect().await.unwrap().to_bytes()
    }

    /// The app closes a pooled connection just as it is picked: hyper gives
    /// the request back unwritten, and it goes out on a new connection.
    #[tokio::test]
    async fn request_given_back_by_a_closed_pooled_connection_is_sent_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = config(listener.local_addr().unwrap());
        let pool = Arc::new(Pool::<Full<Bytes>>::default());
        let (text, first) = exchange(&pool, &config, &listener).await;
        assert_eq!(text, "ok");
        assert_eq!(pool.lock().conns.len(), 1);

        // A byte on a side connection, written before the FIN, comes out of
        // the same poll of the I/O driver ahead of it; the test body is
        // polled before any task, so before the pool's connection task
        // can see its EOF.
        let side = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut side_in = TcpStream::connect(side.local_addr().unwrap())
            .await
            .unwrap();
        let (mut side_out, _) = side.accept().await.unwrap();
        side_out.write_all(b"x").await.unwrap();
        drop(first);
        side_in.read_u8().await.unwrap();
        assert!(pool.lock().conns[0].sender.is_ready(), "EOF seen too soon");

        let (text, _second) = exchange(&pool, &config, &listener).await;
        assert_eq!(text, "ok");
    }

    /// Keep-alive (RFC 9112 §9.3): a connection is reused while younger
    /// than the idle timeout, and closed once it has been idle that long.
    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_reused_then_closed_after_the_idle_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = config(listener.local_addr().unwrap());
        let pool = Arc::new(Pool::<Full<Bytes>>::default());
        let (text, mut conn) = exchange(&pool, &config, &listener).await;
        assert_eq!(text, "ok");

        tokio::time::sleep(IDLE_TIMEOUT - Duration::from_secs(10)).await;
        // Answered on the same connection, or this never completes.
        let reused =
            async { tokio::join!(pool.send(|| open_http1(&config), get()), answer(&mut conn)).0 };
        let response = timeout(Duration::from_secs(1), reused).await;
        assert_eq!(body(response.expect("not reused")).await, "ok");

        let mut byte = [0u8; 1];
        let early = IDLE_TIMEOUT - Duration::from_secs(1);
        let read = timeout(early, conn.read(&mut byte)).await;
        assert!(read.is_err(), "closed before the idle timeout");
        let read = timeout(REAP_EVERY + Duration::from_secs(2), conn.read(&mut byte)).await;
        assert_eq!(read.expect("still open").unwrap(), 0);
        assert!(pool.lock().conns.is_empty());
    }

    /// Past [`MAX_IDLE`], the connection idle the longest is closed.
    #[tokio::test]
    async fn idle_list_keeps_the_most_recently_used_connections() {
        let pool = Arc::new(Pool::<Full<Bytes>>::default());
        let mut app_ends = Vec::new();
        for _ in 0..=MAX_IDLE {
            let (ours, theirs) = tokio::io::duplex(1024);
            let (mut sender, connection) = http1::handshake(TokioIo::new(ours)).await.unwrap();
            tokio::spawn(connection);
            sender.ready().await.unwrap();
            pool.checkin(sender);
            app_ends.push(theirs);
        }
        assert_eq!(pool.lock().conns.len(), MAX_IDLE);
        let mut byte = [0u8; 1];
        let oldest = timeout(Duration::from_secs(5), app_ends[0].read(&mut byte)).await;
        assert_eq!(oldest.expect("oldest still open").unwrap(), 0);
        assert!(pool.lock().conns.iter().all(|c| !c.sender.is_closed()));
    }
}
