//! `GET /events`: Server-Sent Events from a real server, read by a real HTTP client.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use futures::{Stream, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::support::{get, send, state};

const WAIT: Duration = Duration::from_secs(10);

/// A named event and its data, as a browser's EventSource would see it.
#[derive(Debug)]
struct SseEvent {
    name: String,
    data: String,
}

/// Splits a byte stream into SSE events (WHATWG HTML §9.2), skipping comments.
struct SseReader<S> {
    bytes: S,
    buffer: String,
}

impl<S, B, E> SseReader<S>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    fn new(bytes: S) -> Self {
        SseReader {
            bytes,
            buffer: String::new(),
        }
    }

    /// The next event with data, or `None` when the stream ends.
    async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            if let Some(end) = normalized.find("\n\n") {
                let block = normalized[..end].to_string();
                self.buffer = normalized[end + 2..].to_string();
                let mut name = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if line.starts_with(':') {
                        continue;
                    }
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => name = value.to_string(),
                        "data" => data.push(value.to_string()),
                        _ => {}
                    }
                }
                if !data.is_empty() {
                    return Some(SseEvent {
                        name,
                        data: data.join("\n"),
                    });
                }
                continue;
            }
            match self.bytes.next().await {
                Some(Ok(chunk)) => self
                    .buffer
                    .push_str(&String::from_utf8_lossy(chunk.as_ref())),
                Some(Err(e)) => panic!("reading the event stream: {e}"),
                None => return None,
            }
        }
    }
}

fn pv_w(event: &SseEvent) -> f64 {
    assert_eq!(event.name, "snapshot");
    let snapshot: Value = serde_json::from_str(&event.data)
        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", event.data));
    assert!(snapshot["site"].is_object() && snapshot["services"].is_array());
    snapshot["site"]["pv_w"].as_f64().unwrap_or(f64::NAN)
}

#[tokio::test]
async fn real_server_streams_each_change_and_stops_on_shutdown() {
    let (state, tx) = state();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(web::serve(listener, state, shutdown.clone()));

    let response = reqwest::get(format!("http://{addr}/events"))
        .await
        .unwrap_or_else(|e| panic!("GET /events: {e}"));
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut events = SseReader::new(Box::pin(response.bytes_stream()));

    // The current snapshot at once...
    let first = timeout(WAIT, events.next_event())
        .await
        .unwrap_or_else(|_| panic!("no first event"))
        .unwrap_or_else(|| panic!("stream ended"));
    assert_eq!(pv_w(&first), 4321.0);

    // ...then each change.
    tx.send_modify(|snapshot| Arc::make_mut(snapshot).site.pv_w = 9876.0);
    let second = timeout(WAIT, events.next_event())
        .await
        .unwrap_or_else(|_| panic!("no second event"))
        .unwrap_or_else(|| panic!("stream ended"));
    assert_eq!(pv_w(&second), 9876.0);

    // Shutting down ends open streams instead of waiting for them forever.
    shutdown.cancel();
    let served = timeout(WAIT, server)
        .await
        .unwrap_or_else(|_| panic!("server did not stop with an event stream open"));
    served
        .unwrap_or_else(|e| panic!("server task: {e}"))
        .unwrap_or_else(|e| panic!("serve: {e}"));
    let rest = timeout(WAIT, events.next_event())
        .await
        .unwrap_or_else(|_| panic!("stream did not end"));
    assert!(rest.is_none(), "unexpected event after shutdown: {rest:?}");
}

#[tokio::test]
async fn stream_ends_cleanly_when_the_live_loop_stops() {
    let (state, tx) = state();
    let request = get("/events", &[]);
    drop(tx);
    let reply = timeout(WAIT, send(state, request))
        .await
        .unwrap_or_else(|_| panic!("the stream did not end after the sender was dropped"));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.body.matches("event: snapshot").count(),
        1,
        "{}",
        reply.body
    );
}
