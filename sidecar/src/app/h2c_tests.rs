//! The h2c pool against a raw h2 server on the loopback: it opens a
//! connection for the first stream, reuses it for the next, replaces one
//! the app closed, and refuses an extended CONNECT the app did not enable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{Method, Request, Response};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::dial::{AppConfig, AppProtocol};
use super::h2c::H2cPool;
use crate::Error;

/// A tiny h2c app: answers every stream `200` with no body; counts the
/// connections it accepted; drops every connection when `close` is notified.
struct TinyApp {
    config: AppConfig,
    accepted: Arc<AtomicUsize>,
    close: Arc<Notify>,
}

async fn tiny_app() -> TinyApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(Notify::new());
    let (counted, closing) = (accepted.clone(), close.clone());
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            counted.fetch_add(1, Ordering::SeqCst);
            let closing = closing.clone();
            tokio::spawn(async move {
                let mut connection = h2::server::handshake(tcp).await.unwrap();
                loop {
                    tokio::select! {
                        accepted = connection.accept() => {
                            let Some(Ok((_request, mut respond))) = accepted else { return };
                            let _ = respond.send_response(Response::new(()), true);
                        }
                        () = closing.notified() => return,
                    }
                }
            });
        }
    });
    TinyApp {
        config: AppConfig {
            addr: addr.to_string(),
            protocol: AppProtocol::H2c,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            upgrade_timeout: Duration::from_secs(5),
            proxy_protocol: false,
        },
        accepted,
        close,
    }
}

fn get() -> Request<()> {
    Request::builder()
        .uri("http://app.test/")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap()
}

async fn exchange(pool: &H2cPool, config: &AppConfig) {
    let opened = pool.open_stream(config, get(), true).await.unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), opened.response)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn opens_one_connection_and_reuses_it() {
    let app = tiny_app().await;
    let pool = H2cPool::default();
    assert_eq!(pool.live_connections().await, 0);
    exchange(&pool, &app.config).await;
    exchange(&pool, &app.config).await;
    exchange(&pool, &app.config).await;
    assert_eq!(app.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(pool.live_connections().await, 1);
}

#[tokio::test]
async fn replaces_a_connection_the_app_closed() {
    let app = tiny_app().await;
    let pool = H2cPool::default();
    exchange(&pool, &app.config).await;
    app.close.notify_waiters();
    // The connection's task marks it closed once it sees the close.
    tokio::time::timeout(Duration::from_secs(5), async {
        while pool.live_connections().await > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the pool never saw the app close its connection");
    exchange(&pool, &app.config).await;
    assert_eq!(app.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(pool.live_connections().await, 1);
}

#[tokio::test]
async fn extended_connect_needs_the_apps_setting() {
    let app = tiny_app().await;
    let pool = H2cPool::default();
    let mut connect = Request::builder()
        .method(Method::CONNECT)
        .uri("http://app.test/chat")
        .version(http::Version::HTTP_2)
        .body(())
        .unwrap();
    connect
        .extensions_mut()
        .insert(h2::ext::Protocol::from("websocket"));
    let refused = pool.open_stream(&app.config, connect, false).await;
    assert!(matches!(refused, Err(Error::NoExtendedConnect)));
}

#[tokio::test]
async fn an_app_that_is_down_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = tiny_app().await.config;
    config.addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let failed = H2cPool::default().open_stream(&config, get(), true).await;
    assert!(matches!(failed, Err(Error::ConnectApp { .. })));
}
