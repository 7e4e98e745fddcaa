//! The exporter against real sockets on 127.0.0.1: nothing listening, and a listener that never
//! answers (a hung Kestrel). Kestrel itself is exercised by `crates/kestrel/tests/sdk_*.rs`.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caribou_model::{Item, Message};

use super::*;
use crate::exporter::queue::TurnKey;

fn closed_port() -> u16 {
    // Bound then dropped: nothing listens there now, so connecting is refused at once.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(port: u16) -> Config {
    Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        queue_capacity: 4,
        max_batch_records: 2,
        flush_interval: Duration::from_millis(10),
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        max_retries: 50,
        ..Config::default()
    }
}

fn record(turn: &Arc<TurnKey>) -> Box<Queued> {
    let (id, ts) = crate::ids::new_id_and_ts();
    Box::new(Queued::Item {
        id,
        ts,
        turn: turn.clone(),
        item: Item::Message(Message {
            role: "user".into(),
            content: Some("x".repeat(500).into()),
            ..Default::default()
        }),
    })
}

fn turn() -> Arc<TurnKey> {
    Arc::new(TurnKey {
        trace_id: "trc_test".into(),
        turn_id: crate::ids::new_id_and_ts().0,
        valid: true,
    })
}

#[test]
fn a_tiny_queue_with_nobody_listening_drops_and_counts() {
    let exporter = Exporter::start(&config(closed_port())).unwrap();
    let turn = turn();
    let started = Instant::now();
    for _ in 0..100 {
        exporter.enqueue(record(&turn));
    }
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "enqueue never blocks"
    );
    let stats = exporter.stats();
    assert_eq!(stats.enqueued + stats.dropped_queue_full, 100);
    // At most: the queue, the batch being built and the batch in flight.
    assert!(stats.enqueued <= 4 + 2 + 2, "{stats:?}");
    assert_eq!(stats.dropped, stats.dropped_queue_full);
    assert_eq!(stats.sent, 0);

    let started = Instant::now();
    let report = exporter.flush(Duration::from_millis(300));
    let took = started.elapsed();
    assert!(report.timed_out, "{report:?}");
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(report.sent, 0);
    assert_eq!(report.pending, stats.enqueued);

    let report = exporter.shutdown(Duration::from_millis(300));
    assert!(!report.timed_out, "the thread answered: {report:?}");
    assert_eq!(
        (report.sent, report.pending, report.dropped),
        (0, 0, 100),
        "{report:?}"
    );
    // Idempotent, and logging after shutdown is counted as dropped, not lost.
    assert_eq!(exporter.shutdown(Duration::from_secs(1)), report);
    exporter.enqueue(record(&turn));
    let stats = exporter.stats();
    assert_eq!((stats.dropped, stats.pending), (101, 0), "{stats:?}");
    assert!(stats.failed_batches >= 1);
}

#[test]
fn a_hung_kestrel_never_holds_flush_or_shutdown_past_their_timeout() {
    // Accepts connections (the kernel's backlog) but never reads or answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let exporter = Exporter::start(&Config {
        queue_capacity: 1000,
        ..config(port)
    })
    .unwrap();
    let turn = turn();
    for _ in 0..10 {
        exporter.enqueue(record(&turn));
    }
    let started = Instant::now();
    let report = exporter.flush(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(report.timed_out && report.pending == 10, "{report:?}");

    let started = Instant::now();
    let report = exporter.shutdown(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(
        report.timed_out,
        "the request was still hanging: {report:?}"
    );
    assert_eq!(report.sent, 0);
    drop(listener);
}

#[test]
fn flush_with_nothing_logged_returns_at_once() {
    let exporter = Exporter::start(&config(closed_port())).unwrap();
    let started = Instant::now();
    let report = exporter.flush(Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(report, FlushReport::default());
    drop(exporter); // Drop runs shutdown: must return promptly too.
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn retries_give_up_after_max_retries() {
    let exporter = Exporter::start(&Config {
        max_retries: 2,
        queue_capacity: 100,
        ..config(closed_port())
    })
    .unwrap();
    let turn = turn();
    for _ in 0..3 {
        exporter.enqueue(record(&turn));
    }
    // Backoff 50-100 ms then 100-200 ms per batch: both batches are abandoned well within 3 s.
    let report = exporter.flush(Duration::from_secs(3));
    assert!(!report.timed_out, "{report:?}");
    assert_eq!((report.sent, report.dropped, report.pending), (0, 3, 0));
    let stats = exporter.stats();
    assert_eq!(stats.failed_batches, 2);
    assert_eq!(stats.dropped_unsent, 3);
}
