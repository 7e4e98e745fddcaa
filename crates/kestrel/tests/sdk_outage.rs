//! The Rust SDK when Kestrel is down, hung or restarted: flush keeps to its timeout and says what
//! is pending or dropped, and batches retried across a restart are stored exactly once.
//!
//! These tests need a server on a fixed port across a restart, so they start `kestrel serve`
//! themselves (with the environment cleaned by `common::kestrel()`).

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use caribou::model::{Item, Message, Phase};
use caribou::{Config, KestrelClient, TraceHandle, TraceOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A `kestrel serve` on a given port, killed on drop.
struct Kestrel {
    child: Child,
}

impl Kestrel {
    fn start(port: u16, data_dir: &Path) -> Kestrel {
        let log = data_dir.with_extension(format!("{port}.log"));
        Kestrel {
            child: common::serve_on(port, data_dir, &log),
        }
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {signal}");
    }

    /// SIGTERM (graceful: pending writes are committed) and wait for the exit.
    fn stop(mut self) {
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "kestrel did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kestrel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16) -> Config {
    Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        project: Some("outage".into()),
        phase: Phase::Prod,
        flush_interval: Duration::from_millis(20),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_millis(800),
        max_retries: 100,
        // These tests are about retries and drops without the on-disk spool (the fault suite
        // covers the spool).
        spool: false,
        ..Config::default()
    }
}

fn message(text: String) -> Item {
    Item::Message(Message {
        role: "assistant".into(),
        content: Some(text.into()),
        ..Default::default()
    })
}

#[test]
fn a_kestrel_that_is_down_bounds_flush_and_counts_drops() {
    let _serial = serial();
    let port = common::free_port(); // nothing listens there
    caribou::configure(Config {
        queue_capacity: 100,
        max_batch_records: 10,
        ..config(port)
    });
    let trace = TraceHandle::open(TraceOptions::default());
    let started = Instant::now();
    for i in 0..1_000 {
        trace.log(message(format!("m{i}")));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "logging never waits for Kestrel"
    );

    let started = Instant::now();
    let report = caribou::flush(Some(Duration::from_millis(500)));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(report.timed_out, "{report:?}");
    assert_eq!(report.sent, 0);
    let stats = caribou::stats();
    assert!(
        report.pending > 0 && report.pending <= 100 + 10 + 10,
        "{report:?}"
    );
    assert!(stats.dropped_queue_full >= 1_001 - 120, "{stats:?}");
    assert_eq!(stats.enqueued + stats.dropped_queue_full, 1_001);

    let report = caribou::shutdown(Some(Duration::from_millis(500)));
    assert_eq!(
        (report.sent, report.pending, report.dropped),
        (0, 0, 1_001),
        "{report:?}"
    );
}

#[test]
fn a_hung_kestrel_never_holds_flush_or_shutdown_past_their_timeout() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let kestrel = Kestrel::start(port, &dir.path().join("data"));
    kestrel.signal("-STOP"); // accepts connections (the kernel does), answers nothing
    caribou::configure(Config {
        request_timeout: Duration::from_secs(30),
        ..config(port)
    });
    let trace = TraceHandle::open(TraceOptions::default());
    trace.log(message("hello".into()));
    trace.close(None);

    let started = Instant::now();
    let report = caribou::flush(Some(Duration::from_millis(400)));
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    assert!(report.timed_out && report.pending == 3, "{report:?}");
    let started = Instant::now();
    let report = caribou::shutdown(Some(Duration::from_millis(400)));
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
    // The request hangs on the SDK's sender thread; its exporter thread still answers within
    // the timeout and, with no spool, counts what it held as dropped (nothing left pending).
    assert!(
        !report.timed_out && report.dropped == 3 && report.pending == 0,
        "{report:?}"
    );
    drop(kestrel);
}

#[test]
fn batches_retried_across_a_restart_are_stored_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = common::free_port();
    let kestrel = Kestrel::start(port, &data);
    caribou::configure(config(port));

    // Before the outage: acknowledged.
    let before = TraceHandle::open(TraceOptions {
        trace_id: Some("trc_before".into()),
        ..TraceOptions::default()
    });
    before.log(message("before".into()));
    before.close(None);
    let report = caribou::flush(Some(Duration::from_secs(10)));
    assert_eq!(
        (report.sent, report.pending, report.timed_out),
        (3, 0, false),
        "{report:?}"
    );

    // The server freezes: the exporter's request is read by nobody and times out, then retried.
    // Then it is stopped (a frozen server resumes and may still commit what it had received:
    // the retry after the restart is then a duplicate, which must be stored once) and started
    // again on the same port and data.
    kestrel.signal("-STOP");
    let during = TraceHandle::open(TraceOptions {
        trace_id: Some("trc_during".into()),
        ..TraceOptions::default()
    });
    for i in 0..50 {
        during.log(message(format!("during {i}")));
    }
    during.close(None);
    std::thread::sleep(Duration::from_millis(1500));
    let report = caribou::flush(Some(Duration::from_millis(10)));
    assert!(
        report.pending == 52 && report.sent == 3,
        "still pending while down: {report:?}"
    );
    kestrel.signal("-CONT");
    kestrel.stop();
    std::thread::sleep(Duration::from_millis(300)); // a retry or two hit a closed port
    let _kestrel = Kestrel::start(port, &data);

    let report = caribou::flush(Some(Duration::from_secs(30)));
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(
        (report.sent, report.dropped, report.pending),
        (55, 0, 0),
        "{report:?}"
    );

    let client = KestrelClient::from_config(&caribou::current_config());
    let detail = client.get_trace("trc_during").unwrap();
    let texts: Vec<String> = detail
        .items
        .iter()
        .map(|s| match &s.item {
            Item::Message(m) => m
                .content
                .as_ref()
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("during {i}")).collect();
    assert_eq!(texts, expected, "every item once, in order");
    assert_eq!(detail.summary.items, 50);
    assert_eq!(detail.turns.len(), 1, "one turn, not a duplicated one");
    assert_eq!(client.get_trace("trc_before").unwrap().items.len(), 1);
    caribou::shutdown(Some(Duration::from_secs(5)));
}
