//! The embedded broker's backlog (`[mqtt] embedded_backlog_kib`): what it keeps of
//! a subscription's latest messages for a subscriber that is away, and so what it
//! holds in memory for each subscription. Against the real rumqttd the node embeds.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

/// A message the size of a Shelly Pro 3EM status (about 600 bytes), numbered.
fn payload(n: usize) -> String {
    format!("{n:08}:{}", "x".repeat(590))
}

fn options(addr: std::net::SocketAddr, id: &str) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_clean_session(false);
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls until `until` says so or `within` passes; returns whether it did.
async fn poll_until(
    events: &mut EventLoop,
    within: Duration,
    mut until: impl FnMut(&Event) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(event)) => {
                if until(&event) {
                    return true;
                }
            }
            Ok(Err(e)) => panic!("MQTT: {e}"),
            Err(_) => return false,
        }
    }
}

/// A broker with a backlog of `backlog_kib`; a subscriber subscribes, goes away,
/// `sent` messages are published, and it comes back: the message numbers it is
/// sent then, in order.
async fn away_and_back(backlog_kib: u32, sent: usize) -> Vec<usize> {
    let addr = ingest::broker::free_local_addr().expect("port");
    ingest::broker::start_embedded_with(addr, None, backlog_kib).expect("broker");

    let (sub, mut sub_events) = AsyncClient::new(options(addr, "away"), 100);
    sub.subscribe("site/m1/#", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    assert!(
        poll_until(&mut sub_events, Duration::from_secs(10), |e| matches!(
            e,
            Event::Incoming(Packet::SubAck(_))
        ))
        .await,
        "subscribed"
    );
    sub.disconnect().await.expect("disconnect");
    poll_until(&mut sub_events, Duration::from_secs(2), |e| {
        matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect))
    })
    .await;
    drop(sub_events);

    let (publisher, mut pub_events) = AsyncClient::new(options(addr, "meter"), 1000);
    let driver = tokio::spawn(async move {
        let mut acked = 0;
        while acked < sent {
            match pub_events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
    });
    for n in 0..sent {
        publisher
            .publish("site/m1/status", QoS::AtLeastOnce, false, payload(n))
            .await
            .expect("publish");
    }
    tokio::time::timeout(Duration::from_secs(60), driver)
        .await
        .expect("every publish acknowledged by the broker")
        .expect("publisher");

    let (_back, mut back_events) = AsyncClient::new(options(addr, "away"), 100);
    let mut got = Vec::new();
    // Everything the broker still has comes at once; a second of silence ends it.
    loop {
        match tokio::time::timeout(Duration::from_secs(2), back_events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let text = std::str::from_utf8(&p.payload).expect("utf-8");
                got.push(text[..8].parse::<usize>().expect("number"));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => break,
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_away_gets_what_the_backlog_holds_and_no_more() {
    // 2,000 messages, some 1.2 MB, for one subscription.
    let sent = 2000;
    // A backlog larger than that: every message comes, in order.
    let all = away_and_back(4096, sent).await;
    assert_eq!(all, (0..sent).collect::<Vec<_>>());
    // A backlog of 64 KiB: only the latest messages, about 64 KiB of them
    // (three to four of its four segments), the newest last.
    let latest = away_and_back(64, sent).await;
    assert!(!latest.is_empty(), "the latest messages are kept");
    assert_eq!(latest.last(), Some(&(sent - 1)), "{latest:?}");
    let first = latest[0];
    assert_eq!(
        latest,
        (first..sent).collect::<Vec<_>>(),
        "a contiguous tail"
    );
    let kept_bytes = latest.len() * payload(0).len();
    assert!(
        (48 * 1024..=80 * 1024).contains(&kept_bytes),
        "{} messages, {kept_bytes} bytes kept for a backlog of 64 KiB",
        latest.len()
    );
}
