//! The exporter against real sockets on 127.0.0.1: nothing listening, and a listener that never
//! answers (a hung Kestrel). Kestrel itself is exercised by `crates/kestrel/tests/sdk_*.rs`.

use std::net::TcpListener;
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
        // These tests are about what happens without a spool; `spool_*` tests below use one.
        spool: false,
        ..Config::default()
    }
}

fn record(turn: &TurnKey) -> Queued {
    let (id, ts) = crate::ids::new_id_and_ts();
    let item = Item::Message(Message {
        role: "user".into(),
        content: Some("x".repeat(500).into()),
        ..Default::default()
    });
    Queued::item(id, ts, turn, &item).unwrap()
}

fn turn() -> TurnKey {
    TurnKey::new("trc_test".into(), crate::ids::new_id_and_ts().0, true)
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
fn the_byte_bound_drops_and_counts_before_the_record_bound() {
    // Room for 1,000 records but only ~4 of these (~740 bytes each: the JSON of 500 characters of
    // text with its record's envelope, and the fixed overhead).
    let exporter = Exporter::start(&Config {
        queue_capacity: 1_000,
        queue_max_bytes: 4 * 800,
        ..config(closed_port())
    })
    .unwrap();
    let turn = turn();
    let one = record(&turn).approx_bytes();
    assert!((700..=800).contains(&one), "{one}");
    for _ in 0..100 {
        exporter.enqueue(record(&turn));
    }
    let stats = exporter.stats();
    assert_eq!(stats.enqueued + stats.dropped_queue_full, 100);
    // At most: the queue's bytes, the batch being built and the batch in flight.
    assert!(stats.enqueued <= 4 + 2 + 2, "{stats:?}");
    assert!(stats.dropped_queue_full >= 90, "{stats:?}");
    // What the thread took off the queue no longer counts against the bound.
    let queued = exporter.counters.queued_bytes.load(Ordering::Relaxed);
    assert!(queued <= 4 * 800, "{queued}");
    exporter.shutdown(Duration::from_millis(300));
    assert_eq!(exporter.counters.queued_bytes.load(Ordering::Relaxed), 0);
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
    // The request hangs on the sender thread; the exporter thread still answers in time and,
    // with no spool, counts what it held as dropped.
    assert!(!report.timed_out, "{report:?}");
    assert_eq!((report.sent, report.dropped, report.pending), (0, 10, 0));
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

fn spool_config(port: u16, dir: &std::path::Path) -> Config {
    Config {
        queue_capacity: 1000,
        max_batch_records: 10,
        spool: true,
        spool_dir: Some(dir.to_path_buf()),
        ..config(port)
    }
}

/// The batch folder of the endpoint on `port` inside the spool root `root`.
fn batch_dir(root: &std::path::Path, port: u16) -> std::path::PathBuf {
    spool::endpoint_dir(root, &format!("http://127.0.0.1:{port}"))
}

/// Records in a batch folder, from the batch files' names.
fn spooled_records(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter_map(|n| {
                    n.strip_suffix(".batch")?
                        .rsplit('-')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn spool_takes_what_an_unreachable_kestrel_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let port = closed_port();
    let dir = batch_dir(tmp.path(), port);
    let exporter = Exporter::start(&spool_config(port, tmp.path())).unwrap();
    let turn = turn();
    for _ in 0..100 {
        exporter.enqueue(record(&turn));
    }
    let started = Instant::now();
    let report = exporter.flush(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a short retry budget, then the disk: {:?}",
        started.elapsed()
    );
    assert_eq!(
        (report.sent, report.spooled, report.dropped, report.pending),
        (0, 100, 0, 0),
        "{report:?}"
    );
    assert!(!report.timed_out);
    assert_eq!(spooled_records(&dir), 100);
    // Kestrel is taken as down now: new records go straight to the spool.
    for _ in 0..25 {
        exporter.enqueue(record(&turn));
    }
    let started = Instant::now();
    let report = exporter.flush(Duration::from_secs(5));
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((report.spooled, report.pending), (125, 0), "{report:?}");
    let report = exporter.shutdown(Duration::from_secs(1));
    assert_eq!(
        (report.spooled, report.dropped, report.pending),
        (125, 0, 0)
    );
    // Probes may have claimed a file for a moment; none is left claimed or lost.
    assert_eq!(spooled_records(&dir), 125);
}

/// Whether the disk under `dir` syncs a small file in under 50 ms, three times running. The spill
/// has at most 500 ms before a deadline; on a disk busy writing back gigabytes (a CI machine
/// right after a build) one `fsync` can take longer than that, and then `flush` rightly reports
/// what is still pending instead.
fn disk_is_quick(dir: &std::path::Path) -> bool {
    use std::io::Write;
    (0..3).all(|i| {
        let path = dir.join(format!("fsync-probe-{i}"));
        let started = Instant::now();
        let synced = std::fs::File::create(&path)
            .and_then(|mut f| {
                f.write_all(&[0; 4096])?;
                f.sync_all()
            })
            .is_ok();
        let _ = std::fs::remove_file(&path);
        synced && started.elapsed() < Duration::from_millis(50)
    })
}

/// Waits (at most 30 s) until the spool folder holds `n` records.
fn spool_reaches(dir: &std::path::Path, n: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = spooled_records(dir);
        if held >= n || Instant::now() > deadline {
            return held;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_hung_kestrel_is_spilled_to_the_spool_before_the_flush_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let tmp = tempfile::tempdir().unwrap();
    let probe = tempfile::tempdir().unwrap();
    let exporter = Exporter::start(&Config {
        request_timeout: Duration::from_secs(30),
        ..spool_config(port, tmp.path())
    })
    .unwrap();
    let turn = turn();
    for _ in 0..35 {
        exporter.enqueue(record(&turn));
    }
    // The spill starts a quarter of the timeout (at most 500 ms) before the deadline.
    let quick_before = disk_is_quick(probe.path());
    let started = Instant::now();
    let report = exporter.flush(Duration::from_secs(2));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2100), "{took:?}");
    assert_eq!(report.sent, 0, "{report:?}");
    assert_eq!(report.spooled + report.pending, 35, "{report:?}");
    // The timing is promised only on a disk that kept answering quickly around the call.
    if quick_before && disk_is_quick(probe.path()) {
        assert_eq!(
            (report.spooled, report.pending, report.timed_out),
            (35, 0, false),
            "all on disk before the deadline: {report:?}"
        );
    }
    // More records, then shutdown: spooled as well, within its timeout.
    for _ in 0..5 {
        exporter.enqueue(record(&turn));
    }
    let quick_before = disk_is_quick(probe.path());
    let started = Instant::now();
    let report = exporter.shutdown(Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_millis(2100));
    assert_eq!(report.dropped, 0, "{report:?}");
    if quick_before && disk_is_quick(probe.path()) {
        assert_eq!(
            (report.spooled, report.pending),
            (40, 0),
            "all on disk before the deadline: {report:?}"
        );
    }
    // Whatever the disk's speed, every record ends on disk (the spill goes on past a deadline).
    assert_eq!(spool_reaches(&batch_dir(tmp.path(), port), 40), 40);
    drop(listener);
}

#[test]
fn a_full_spool_drops_its_oldest_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let port = closed_port();
    let exporter = Exporter::start(&Config {
        spool_max_bytes: 4_000,
        ..spool_config(port, tmp.path())
    })
    .unwrap();
    let turn = turn();
    for _ in 0..200 {
        exporter.enqueue(record(&turn));
    }
    let report = exporter.shutdown(Duration::from_secs(3));
    let stats = exporter.stats();
    assert_eq!(report.spooled, 200, "{report:?}");
    assert!(stats.dropped_spool > 0, "{stats:?}");
    assert_eq!(report.dropped, stats.dropped_spool);
    assert_eq!(
        spooled_records(&batch_dir(tmp.path(), port)) + stats.dropped_spool,
        200,
        "every record is either on disk or counted as dropped"
    );
}
