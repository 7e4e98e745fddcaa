//! One spool folder shared by processes for different Kestrels: each process replays only what
//! was spooled for its own endpoint. Real sockets on 127.0.0.1 stand for the Kestrels: a closed
//! port (Kestrel down) and listeners that count connections (who tried to deliver to them).

mod support;

use std::time::Duration;

use support::{Knocks, batch_files, closed_port, log_trace, loose_files_in, serial, spooling};

/// Long enough for an exporter to scan the spool and start replaying it (it does so at once).
const REPLAY_WINDOW: Duration = Duration::from_millis(1500);

#[test]
fn batches_spooled_for_one_kestrel_are_delivered_only_to_it() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    // Kestrel A is down: its records go to the spool.
    let port_a = closed_port();
    caribou::configure(spooling(port_a, root.path()));
    log_trace(5);
    let report = caribou::shutdown(Some(Duration::from_secs(5)));
    assert_eq!((report.spooled, report.pending), (7, 0), "{report:?}");
    let spooled = batch_files(root.path());
    assert!(!spooled.is_empty());

    // A process for Kestrel B with the same spool folder (and API key): nothing of A's reaches
    // B, and A's files are left as they were.
    let b = Knocks::listen(0);
    caribou::configure(spooling(b.port, root.path()));
    std::thread::sleep(REPLAY_WINDOW);
    caribou::shutdown(Some(Duration::from_secs(2)));
    assert_eq!(b.count(), 0, "batches spooled for A were sent to B");
    assert_eq!(
        batch_files(root.path()),
        spooled,
        "A's batches are kept for A"
    );

    // A is back: a process for A delivers them.
    let a = Knocks::listen(port_a);
    caribou::configure(spooling(port_a, root.path()));
    assert!(
        a.wait(Duration::from_secs(5)) > 0,
        "a process for A replays A's batches"
    );
    caribou::shutdown(Some(Duration::from_secs(2)));
}

#[test]
fn batch_files_in_the_spool_folder_itself_are_never_replayed_nor_touched() {
    let _serial = serial();
    let root = tempfile::tempdir().unwrap();
    let loose = loose_files_in(root.path());

    let kestrel = Knocks::listen(0);
    caribou::configure(spooling(kestrel.port, root.path()));
    std::thread::sleep(REPLAY_WINDOW);
    caribou::shutdown(Some(Duration::from_secs(2)));
    assert_eq!(
        kestrel.count(),
        0,
        "a batch of unknown endpoint was sent to this one"
    );
    assert_eq!(batch_files(root.path()), loose, "left where they are");
}
