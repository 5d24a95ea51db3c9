//! Slow and idle clients cannot hold connections: headers must arrive in time, bodies too, and
//! an idle connection is closed, while everyone else is served meanwhile.

use std::time::Duration;

use filot::http::auth::Role;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{TestApp, spawn_app_with};

async fn quick() -> TestApp {
    spawn_app_with(|s| {
        s.http.header_read_timeout = Duration::from_secs(1);
        s.http.body_read_timeout = Duration::from_secs(1);
        s.http.idle_timeout = Duration::from_secs(2);
    })
    .await
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection; everything it said before closing.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection was still open after {within:?}"
    );
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn a_request_whose_headers_never_finish_is_closed_and_others_are_served() {
    let app = quick().await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: filot\r\nX-Slow: ")
        .await
        .unwrap();
    // Meanwhile the service answers everyone else.
    let alice = app.token("alice", Role::User);
    assert_eq!(app.get(&alice, "/v1/documents").await.status(), 200);
    // Trickling more header bytes does not keep it alive.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _ = slow.write_all(b"a").await;
    }
    let said = until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(!said.contains("200 OK"), "{said}");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = quick().await;
    let mut idle = connect(&app).await;
    // A complete request, then nothing: the kept-alive connection is let go.
    idle.write_all(b"GET /health/live HTTP/1.1\r\nHost: filot\r\n\r\n")
        .await
        .unwrap();
    let said = until_closed(&mut idle, Duration::from_secs(10)).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
}

#[tokio::test]
async fn a_body_that_never_finishes_gets_408() {
    let app = quick().await;
    let alice = app.token("alice", Role::User);
    let mut slow = connect(&app).await;
    let head = format!(
        "POST /v1/webhooks HTTP/1.1\r\nHost: filot\r\nAuthorization: Bearer {alice}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"url\":"
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let said = until_closed(&mut slow, Duration::from_secs(10)).await;
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    assert!(said.contains("\"request_timeout\""), "{said}");
}
