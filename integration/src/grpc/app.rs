//! The `test.Echo` gRPC app: tonic's server-side gRPC handling
//! (`tonic::server::Grpc`, one per method) under hyper's HTTP/2 server,
//! cleartext with prior knowledge on a loopback listener, as a gRPC app
//! behind a sidecar serves. Each call is recorded ([`GrpcApp::calls`]):
//! its path, its request headers (so that a test sees `grpc-timeout`
//! arrive), and how it ended, a stream cancelled by its client included.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::Stream;
use http::HeaderMap;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::server::{
    ClientStreamingService, Grpc, ServerStreamingService, StreamingService, UnaryService,
};
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_prost::ProstCodec;

use super::{
    BIDI_STREAM, CLIENT_STREAM, EchoMessage, FAIL, FailRequest, Number, SERVER_STREAM,
    StreamRequest, Sum, UNARY,
};

/// A stream of answers, boxed.
type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
/// A future of an answer, boxed.
type Answer<T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send>>;

/// How a call has gone so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Still being answered.
    Running,
    /// Answered to its end (a status included).
    Finished,
    /// Its client went away (RST_STREAM) before the answer ended.
    Cancelled,
}

/// One call the app received.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method's path, such as `/test.Echo/Unary`.
    pub path: String,
    /// The request's header fields as the app got them.
    pub headers: HeaderMap,
    /// How it went.
    pub outcome: Outcome,
}

/// The calls so far, shared with the running services.
#[derive(Debug, Default)]
struct Record(Mutex<Vec<Call>>);

impl Record {
    fn begin(&self, path: &str, headers: &HeaderMap) -> usize {
        let mut calls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        calls.push(Call {
            path: path.to_owned(),
            headers: headers.clone(),
            outcome: Outcome::Running,
        });
        calls.len() - 1
    }

    fn end(&self, call: usize, outcome: Outcome) {
        let mut calls = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(call) = calls.get_mut(call) {
            call.outcome = outcome;
        }
    }
}

/// The running app; it stops when the token given to
/// [`GrpcApp::spawn`] is cancelled.
#[derive(Debug, Clone)]
pub struct GrpcApp {
    /// Where it listens (h2c).
    pub addr: SocketAddr,
    record: Arc<Record>,
}

impl GrpcApp {
    /// Serves `test.Echo` on `listener` until `shutdown`.
    pub fn spawn(listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let addr = listener.local_addr()?;
        let record = Arc::new(Record::default());
        tokio::spawn(accept(listener, record.clone(), shutdown));
        Ok(Self { addr, record })
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        let calls = self.record.0.lock().unwrap_or_else(PoisonError::into_inner);
        calls.clone()
    }

    /// Waits, up to `bound`, until the last call to `path` has ended; its
    /// record, or `None` when it was still running (or never came).
    pub async fn ended(&self, path: &str, bound: Duration) -> Option<Call> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let last = self
                .calls()
                .into_iter()
                .rev()
                .find(|call| call.path == path);
            if let Some(call) = last.filter(|call| call.outcome != Outcome::Running) {
                return Some(call);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn accept(listener: TcpListener, record: Arc<Record>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let record = record.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| route(record.clone(), request));
            let served = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = served => {}
            }
        });
    }
}

/// One call, to its method.
async fn route(
    record: Arc<Record>,
    request: http::Request<Incoming>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    let path = request.uri().path().to_owned();
    let call = record.begin(&path, request.headers());
    let response = match path.as_str() {
        UNARY => Grpc::new(ProstCodec::default()).unary(Unary, request).await,
        FAIL => Grpc::new(ProstCodec::default()).unary(Fail, request).await,
        CLIENT_STREAM => {
            let service = ClientStream;
            Grpc::new(ProstCodec::default())
                .client_streaming(service, request)
                .await
        }
        SERVER_STREAM => {
            let service = ServerStream { record, call };
            let mut grpc = Grpc::new(ProstCodec::default());
            return Ok(grpc.server_streaming(service, request).await);
        }
        BIDI_STREAM => {
            let service = BidiStream { record, call };
            let mut grpc = Grpc::new(ProstCodec::default());
            return Ok(grpc.streaming(service, request).await);
        }
        _ => Status::unimplemented(format!("no method {path}")).into_http(),
    };
    record.end(call, Outcome::Finished);
    Ok(response)
}

/// `Unary`: the message back.
struct Unary;

impl UnaryService<EchoMessage> for Unary {
    type Response = EchoMessage;
    type Future = Ready<Result<Response<EchoMessage>, Status>>;

    fn call(&mut self, request: Request<EchoMessage>) -> Self::Future {
        ready(Ok(Response::new(request.into_inner())))
    }
}

/// `Fail`: the status asked for.
struct Fail;

impl UnaryService<FailRequest> for Fail {
    type Response = EchoMessage;
    type Future = Ready<Result<Response<EchoMessage>, Status>>;

    fn call(&mut self, request: Request<FailRequest>) -> Self::Future {
        let asked = request.into_inner();
        ready(Err(Status::new(Code::from(asked.code), asked.message)))
    }
}

/// `ClientStream`: the sum and count of the numbers.
struct ClientStream;

impl ClientStreamingService<Number> for ClientStream {
    type Response = Sum;
    type Future = Answer<Sum>;

    fn call(&mut self, request: Request<Streaming<Number>>) -> Self::Future {
        let mut numbers = request.into_inner();
        Box::pin(async move {
            let mut sum = Sum::default();
            while let Some(number) = numbers.message().await? {
                sum.total += number.value;
                sum.count += 1;
            }
            Ok(Response::new(sum))
        })
    }
}

/// `ServerStream`: `count` messages, `delay_ms` before each.
struct ServerStream {
    record: Arc<Record>,
    call: usize,
}

impl ServerStreamingService<StreamRequest> for ServerStream {
    type Response = EchoMessage;
    type ResponseStream = Answers<EchoMessage>;
    type Future = Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<StreamRequest>) -> Self::Future {
        let asked = request.into_inner();
        let (send, receive) = mpsc::channel(1);
        let (record, call) = (self.record.clone(), self.call);
        tokio::spawn(async move {
            let outcome = produce(&asked, &send).await;
            record.end(call, outcome);
        });
        ready(Ok(Response::new(answers(receive))))
    }
}

/// Sends `asked.count` messages on `send`, each after `asked.delay_ms`;
/// cancelled when the answer's stream is dropped (its client reset it).
async fn produce(
    asked: &StreamRequest,
    send: &mpsc::Sender<Result<EchoMessage, Status>>,
) -> Outcome {
    let delay = Duration::from_millis(u64::from(asked.delay_ms));
    for index in 0..asked.count {
        tokio::select! {
            () = send.closed() => return Outcome::Cancelled,
            () = tokio::time::sleep(delay) => {}
        }
        let message = EchoMessage {
            text: asked.text.clone(),
            index,
        };
        if send.send(Ok(message)).await.is_err() {
            return Outcome::Cancelled;
        }
    }
    Outcome::Finished
}

/// `BidiStream`: each message back, numbered, as it comes.
struct BidiStream {
    record: Arc<Record>,
    call: usize,
}

impl StreamingService<EchoMessage> for BidiStream {
    type Response = EchoMessage;
    type ResponseStream = Answers<EchoMessage>;
    type Future = Ready<Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<EchoMessage>>) -> Self::Future {
        let mut incoming = request.into_inner();
        let (send, receive) = mpsc::channel(1);
        let (record, call) = (self.record.clone(), self.call);
        tokio::spawn(async move {
            let mut index = 0;
            let outcome = loop {
                let next = tokio::select! {
                    () = send.closed() => break Outcome::Cancelled,
                    next = incoming.message() => next,
                };
                let message = match next {
                    Ok(Some(message)) => message,
                    Ok(None) => break Outcome::Finished,
                    Err(_) => break Outcome::Cancelled,
                };
                let echo = EchoMessage {
                    text: message.text,
                    index,
                };
                index += 1;
                if send.send(Ok(echo)).await.is_err() {
                    break Outcome::Cancelled;
                }
            };
            record.end(call, outcome);
        });
        ready(Ok(Response::new(answers(receive))))
    }
}

/// The messages sent on a channel, as the answer's stream.
fn answers<T: Send + 'static>(receive: mpsc::Receiver<Result<T, Status>>) -> Answers<T> {
    Box::pin(futures_util::stream::unfold(
        receive,
        |mut receive| async move { receive.recv().await.map(|item| (item, receive)) },
    ))
}
