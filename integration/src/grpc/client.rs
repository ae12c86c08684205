//! A client of `test.Echo`: tonic's client-side gRPC handling
//! (`tonic::client::Grpc`) over hyper's HTTP/2 client, on one connection
//! given by the test: h2c with prior knowledge ([`GrpcClient::h2c`]) or TLS
//! with ALPN `h2` to the front ([`GrpcClient::tls`]). A call with a
//! deadline sends `grpc-timeout` and, as gRPC clients do, ends itself with
//! DEADLINE_EXCEEDED when it passes, resetting the stream (RST_STREAM
//! CANCEL), which tells the server the call is cancelled.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use futures_util::Stream;
use http::Uri;
use http::uri::PathAndQuery;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tonic::body::Body;
use tonic::{Code, Request, Status, Streaming};
use tonic_prost::ProstCodec;

use super::{
    BIDI_STREAM, CLIENT_STREAM, EchoMessage, FAIL, FailRequest, Number, SERVER_STREAM,
    StreamRequest, Sum, UNARY,
};
use crate::h2_client::tls_connect;
use crate::harness::Pair;

/// One HTTP/2 connection, as the service tonic's client sends on.
#[derive(Debug, Clone)]
pub struct H2Channel {
    send: SendRequest<Body>,
}

impl tower_service::Service<http::Request<Body>> for H2Channel {
    type Response = http::Response<Incoming>;
    type Error = hyper::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<http::Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        Box::pin(self.send.send_request(request))
    }
}

/// What a streamed answer gave: its messages, then how it ended (code
/// `Ok` for a clean end with status 0).
#[derive(Debug)]
pub struct Streamed {
    /// The messages received, in order.
    pub messages: Vec<EchoMessage>,
    /// The final status.
    pub status: Status,
}

/// A `test.Echo` client on one HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    grpc: tonic::client::Grpc<H2Channel>,
}

impl GrpcClient {
    /// h2c with prior knowledge to `addr` (the app, or the front's plain
    /// listener).
    pub async fn h2c(addr: SocketAddr) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Self::over(tcp, Uri::from_static("http://localhost")).await
    }

    /// TLS to the pair's client listener, trusting its CA, ALPN `h2`.
    pub async fn tls(pair: &Pair) -> anyhow::Result<Self> {
        let tls = tls_connect(pair, &[b"h2"]).await?;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]),
            "the front did not choose h2"
        );
        Self::over(tls, Uri::from_static("https://localhost")).await
    }

    /// HTTP/2 over `io`, calls going to `origin` (scheme and authority).
    pub async fn over<T>(io: T, origin: Uri) -> anyhow::Result<Self>
    where
        T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(TokioIo::new(io))
            .await
            .context("HTTP/2 handshake")?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let grpc = tonic::client::Grpc::with_origin(H2Channel { send }, origin);
        Ok(Self { grpc })
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.grpc
            .ready()
            .await
            .map_err(|err| Status::unavailable(format!("connection not ready: {err}")))
    }

    /// `Unary`: `text` echoed.
    pub async fn unary(&mut self, text: &str) -> Result<EchoMessage, Status> {
        self.ready().await?;
        let message = EchoMessage {
            text: text.to_owned(),
            index: 0,
        };
        let path = PathAndQuery::from_static(UNARY);
        let codec = ProstCodec::default();
        let response = self.grpc.unary(Request::new(message), path, codec).await?;
        Ok(response.into_inner())
    }

    /// `Fail`: the status `code` with `message`, as the server sends it.
    pub async fn fail(&mut self, code: Code, message: &str) -> Status {
        if let Err(status) = self.ready().await {
            return status;
        }
        let asked = FailRequest {
            code: code as i32,
            message: message.to_owned(),
        };
        let path = PathAndQuery::from_static(FAIL);
        let codec = ProstCodec::<FailRequest, EchoMessage>::default();
        match self.grpc.unary(Request::new(asked), path, codec).await {
            Ok(_) => Status::new(Code::Ok, ""),
            Err(status) => status,
        }
    }

    /// `ServerStream`, within `deadline` if given (sent as
    /// `grpc-timeout`): every message, then the final status.
    pub async fn server_stream(
        &mut self,
        asked: StreamRequest,
        deadline: Option<Duration>,
    ) -> Streamed {
        let ends = deadline.map(|after| Instant::now() + after);
        let mut messages = Vec::new();
        let call = async {
            self.ready().await?;
            let mut request = Request::new(asked);
            if let Some(after) = deadline {
                request.set_timeout(after);
            }
            let path = PathAndQuery::from_static(SERVER_STREAM);
            let codec = ProstCodec::default();
            let mut stream = self.grpc.server_streaming(request, path, codec).await?;
            read_all(stream.get_mut(), &mut messages).await
        };
        let status = match within(ends, call).await {
            Ok(()) => Status::new(Code::Ok, ""),
            Err(status) => status,
        };
        Streamed { messages, status }
    }

    /// `ServerStream` without a deadline, given up after `keep` messages:
    /// the call is dropped, which resets its stream (RST_STREAM CANCEL),
    /// as a client cancels a call. The messages read before.
    pub async fn server_stream_cancelled(
        &mut self,
        asked: StreamRequest,
        keep: usize,
    ) -> Result<Vec<EchoMessage>, Status> {
        self.ready().await?;
        let path = PathAndQuery::from_static(SERVER_STREAM);
        let codec = ProstCodec::default();
        let mut stream = self
            .grpc
            .server_streaming(Request::new(asked), path, codec)
            .await?
            .into_inner();
        let mut messages = Vec::new();
        while messages.len() < keep {
            match stream.message().await? {
                Some(message) => messages.push(message),
                None => break,
            }
        }
        Ok(messages)
    }

    /// `ClientStream`: the sum and count of `values`, sent one message each.
    pub async fn client_stream(&mut self, values: Vec<u64>) -> Result<Sum, Status> {
        self.ready().await?;
        let numbers = futures_util::stream::iter(values.into_iter().map(|value| Number { value }));
        let path = PathAndQuery::from_static(CLIENT_STREAM);
        let codec = ProstCodec::default();
        let response = self
            .grpc
            .client_streaming(Request::new(numbers), path, codec)
            .await?;
        Ok(response.into_inner())
    }

    /// `BidiStream`: a sender for the messages to send (dropping it ends
    /// the request stream) and the stream of echoes.
    pub async fn bidi(
        &mut self,
    ) -> Result<(mpsc::Sender<EchoMessage>, Streaming<EchoMessage>), Status> {
        self.ready().await?;
        let (send, receive) = mpsc::channel(4);
        let path = PathAndQuery::from_static(BIDI_STREAM);
        let codec = ProstCodec::default();
        let outgoing = requests(receive);
        let response = self
            .grpc
            .streaming(Request::new(outgoing), path, codec)
            .await?;
        Ok((send, response.into_inner()))
    }
}

/// Every message of `stream` into `messages`, to its end.
async fn read_all(
    stream: &mut Streaming<EchoMessage>,
    messages: &mut Vec<EchoMessage>,
) -> Result<(), Status> {
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(())
}

/// `call`, ended with DEADLINE_EXCEEDED at `ends` (dropping it resets the
/// stream).
async fn within(
    ends: Option<Instant>,
    call: impl Future<Output = Result<(), Status>>,
) -> Result<(), Status> {
    let Some(ends) = ends else { return call.await };
    timeout_at(ends, call)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("deadline passed")))
}

/// The messages sent on a channel, as a request stream.
fn requests(receive: mpsc::Receiver<EchoMessage>) -> impl Stream<Item = EchoMessage> + Send {
    futures_util::stream::unfold(receive, |mut receive| async move {
        receive.recv().await.map(|message| (message, receive))
    })
}
