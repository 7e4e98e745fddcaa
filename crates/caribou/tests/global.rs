//! The process-wide SDK (configure, drops, shutdown, fork hand-over) against real sockets on
//! 127.0.0.1 where nothing answers. One process per test file: tests here share the global state,
//! so they take a lock to run one at a time.

use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use caribou::model::{Item, Message};
use caribou::{Config, TraceHandle, TraceOptions};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("an ephemeral port")
        .port()
}

fn config(port: u16, capacity: usize) -> Config {
    Config {
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        project: Some("tests".into()),
        queue_capacity: capacity,
        max_batch_records: 2,
        flush_interval: Duration::from_millis(10),
        connect_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(5),
        // Drops are what these tests count: no on-disk spool.
        spool: false,
        ..Config::default()
    }
}

fn message(text: &str) -> Item {
    Item::Message(Message {
        role: "user".into(),
        content: Some(text.into()),
        ..Default::default()
    })
}

#[test]
fn drops_are_counted_and_shutdown_is_idempotent() {
    let _serial = serial();
    caribou::configure(config(closed_port(), 8));
    assert!(caribou::is_enabled());
    let trace = TraceHandle::open(TraceOptions::default());
    let started = Instant::now();
    for _ in 0..200 {
        trace.log(message("hello"));
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "logging never blocks"
    );
    // Invalid: an empty role, a negative cost, a trace id with a newline.
    trace.log(Item::Message(Message {
        role: String::new(),
        ..Default::default()
    }));
    trace.log(Item::Message(Message {
        role: "a".into(),
        cost_usd: Some(-1.0),
        ..Default::default()
    }));
    let bad = TraceHandle::open(TraceOptions {
        trace_id: Some("trc\nbad".into()),
        ..Default::default()
    });
    bad.log(message("lost"));
    bad.close(None);

    let stats = caribou::stats();
    assert_eq!(
        stats.dropped_invalid, 5,
        "2 items, the bad trace's open, item and close: {stats:?}"
    );
    assert!(stats.dropped_queue_full >= 200 - 8 - 4, "{stats:?}");
    assert_eq!(
        stats.enqueued + stats.dropped_queue_full + stats.dropped_invalid,
        206
    );

    let report = caribou::shutdown(Some(Duration::from_millis(500)));
    assert!(!report.timed_out, "{report:?}");
    assert_eq!((report.sent, report.pending), (0, 0));
    assert_eq!(report.dropped, 206);
    assert!(!caribou::is_enabled());
    assert_eq!(caribou::shutdown(None), report, "idempotent");
    assert_eq!(caribou::flush(None), report);

    // After shutdown, logging is a no-op: nothing counted, nothing queued.
    trace.log(message("after"));
    let after = caribou::stats();
    assert_eq!(after.dropped, 206);
    assert_eq!(after.enqueued, stats.enqueued);
}

#[test]
fn without_an_endpoint_everything_is_a_no_op() {
    let _serial = serial();
    caribou::configure(Config::default());
    assert!(!caribou::is_enabled());
    let id = caribou::trace_run(TraceOptions::default(), |t| {
        caribou::log(message("x"));
        caribou::set_status(caribou::model::RolloutStatus::Truncated);
        t.trace_id().to_owned()
    });
    assert!(id.starts_with("trc_"));
    assert_eq!(caribou::stats(), caribou::Stats::default());
    assert_eq!(
        caribou::flush(Some(Duration::from_millis(10))),
        caribou::FlushReport::default()
    );
}

#[test]
fn an_endpoint_that_cannot_be_used_disables_the_sdk() {
    let _serial = serial();
    for bad in [
        "not a url",
        "ftp://files.example.com",
        "https://kestrel.example.com",
        "http://",
        "localhost:8750",
    ] {
        caribou::configure(Config {
            endpoint: Some(bad.into()),
            ..config(closed_port(), 8)
        });
        assert!(
            !caribou::is_enabled(),
            "{bad:?} was taken for an endpoint: the SDK is enabled"
        );
        assert_eq!(caribou::current_config().endpoint, None, "{bad}");
        assert!(!caribou::KestrelClient::from_config(&caribou::current_config()).enabled());
        // Logging is a no-op: nothing queued, nothing spooled for ever.
        caribou::trace_run(TraceOptions::default(), |_| caribou::log(message("x")));
        assert_eq!(caribou::stats(), caribou::Stats::default(), "{bad}");
        assert_eq!(
            caribou::flush(Some(Duration::from_secs(2))),
            caribou::FlushReport::default()
        );
    }
    // A usable endpoint afterwards works (the warning, once per value: `tests/warnings.rs`).
    caribou::configure(config(closed_port(), 8));
    assert!(caribou::is_enabled());
    caribou::shutdown(Some(Duration::from_millis(300)));
}

#[test]
fn a_fork_child_starts_a_fresh_exporter_lazily() {
    let _serial = serial();
    // A listener that never answers: the "parent's" exporter is stuck in a request, as it may be
    // at fork time.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    caribou::configure(config(port, 1000));
    let trace = TraceHandle::open(TraceOptions::default());
    trace.log(message("parent"));
    assert_eq!(caribou::stats().enqueued, 2);

    // What the child runs after fork(): no lock taken, nothing of the inherited exporter touched.
    let started = Instant::now();
    caribou::after_fork_in_child();
    assert!(started.elapsed() < Duration::from_millis(50));
    assert_eq!(
        caribou::stats(),
        caribou::Stats::default(),
        "fresh counters, thread not started yet"
    );
    assert!(caribou::is_enabled());
    assert_eq!(caribou::current_config().project.as_deref(), Some("tests"));

    trace.log(message("child"));
    assert_eq!(
        caribou::stats().enqueued,
        1,
        "a new exporter started on first use"
    );
    let report = caribou::shutdown(Some(Duration::from_millis(300)));
    assert_eq!(report.sent, 0);
    drop(listener);
}

/// Rough hot-path figure: `cargo test -p caribou --release --test global -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn hot_path_ns_per_log() {
    let _serial = serial();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // The exporter hangs on its first request, so records stay queued: the figure is the
    // caller's cost alone (record, ids, validation, try_send), not the exporter's. It is an upper
    // bound: no record is ever freed here, so every allocation faults in fresh pages, which a
    // running exporter (freeing sent records) avoids.
    caribou::configure(Config {
        max_batch_records: 1000,
        ..config(port, 300_000)
    });
    let trace = TraceHandle::open(TraceOptions::default());
    let text = "x".repeat(500);
    let n = 200_000;
    let items: Vec<Item> = (0..n).map(|_| message(&text)).collect();
    let started = Instant::now();
    for item in items {
        trace.log(item);
    }
    let per_call = started.elapsed().as_nanos() / n as u128;
    let stats = caribou::stats();
    println!("TraceHandle::log of a 500-char Message: {per_call} ns per call ({stats:?})");
    assert_eq!(stats.dropped, 0);
    caribou::shutdown(Some(Duration::from_millis(200)));
    drop(listener);
}
