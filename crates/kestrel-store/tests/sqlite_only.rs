//! Tests that only make sense for the SQLite store: persistence across reopen, schema versions,
//! and a throughput figure (ignored: run it by hand with `--ignored --nocapture`).

use std::time::Instant;

use caribou_model::api::TraceFilter;
use caribou_model::{Batch, Record, RolloutStatus, TraceOpen, new_record_id};
use kestrel_store::testsuite::fixtures::{T0, batch, close, msg, open, tool};
use kestrel_store::{SqliteConfig, SqliteStore, Store, StoreError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (run_id, records) = {
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
        let run = store
            .create_run(caribou_model::api::CreateRun {
                project: "keep".into(),
                phase: caribou_model::Phase::Eval,
                name: None,
                config: None,
            })
            .await
            .expect("run");
        let turn = new_record_id();
        let records = vec![
            Record::TraceOpen(TraceOpen {
                run_id: Some(run.id.clone()),
                project: None,
                ..open("kept", T0, turn, "x")
            }),
            msg("kept", T0 + 1, 3, 4, 0.5),
            close("kept", T0 + 2, turn, Some(RolloutStatus::Completed)),
        ];
        let r = store.ingest(batch(records.clone())).await.expect("ingest");
        assert_eq!(r.accepted, 3);
        store.get_or_create_project("empty").await.expect("project");
        store.close().await.expect("close");
        // After close, writes fail cleanly instead of hanging.
        assert!(matches!(
            store.ingest(Batch::default()).await,
            Err(StoreError::Internal(_))
        ));
        (run.id, records)
    };
    assert!(dir.path().join("kestrel.sqlite3").exists());
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("reopen");
    let t = store
        .get_trace("kept")
        .await
        .expect("get")
        .expect("the trace is still there");
    assert_eq!(
        (t.items.len(), t.summary.status, t.summary.run_id.as_deref()),
        (1, RolloutStatus::Completed, Some(run_id.as_str()))
    );
    assert_eq!(
        store
            .get_run(&run_id)
            .await
            .expect("get")
            .map(|r| r.project),
        Some("keep".into())
    );
    // Dedup state persisted too: the same records are duplicates now.
    let again = store.ingest(batch(records)).await.expect("ingest");
    assert_eq!((again.accepted, again.duplicates), (0, 3));
    assert!(store.get_project("empty").await.expect("get").is_some());
    let page = store
        .list_traces(&TraceFilter::default())
        .await
        .expect("list");
    assert_eq!(page.data.len(), 1);
    store.close().await.expect("close");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kestrel.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).expect("create");
        conn.execute_batch("PRAGMA user_version = 999")
            .expect("set version");
    }
    let err = SqliteStore::open(SqliteConfig::new(dir.path())).expect_err("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("999") && msg.contains("newer Kestrel"),
        "{msg}"
    );
    let conn = rusqlite::Connection::open(&path).expect("open");
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(v, 999, "the file is left as it was");
}

/// Rough ingest throughput: batches of 1,000 items (10 traces of 100 items each), sent by a few
/// concurrent clients. Prints a figure; asserts nothing about time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, run by hand"]
async fn ingest_throughput() {
    const CLIENTS: usize = 4;
    const BATCHES: usize = 50;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    let make = |c: usize, b: usize| {
        let mut records = Vec::with_capacity(1000);
        for t in 0..10 {
            let trace = format!("perf-{c}-{b}-{t}");
            for i in 0..100i64 {
                let ts = T0 + i;
                records.push(if i % 3 == 0 {
                    tool(&trace, ts, "search")
                } else {
                    msg(&trace, ts, 500, 200, 0.001)
                });
            }
        }
        batch(records)
    };
    let batches: Vec<Vec<Batch>> = (0..CLIENTS)
        .map(|c| (0..BATCHES).map(|b| make(c, b)).collect())
        .collect();
    let started = Instant::now();
    let mut handles = Vec::new();
    for client in batches {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            for b in client {
                store.ingest(b).await.expect("ingest");
            }
        }));
    }
    for h in handles {
        h.await.expect("client");
    }
    let secs = started.elapsed().as_secs_f64();
    let items = (CLIENTS * BATCHES * 1000) as f64;
    println!(
        "ingested {items} items in {secs:.2}s: {:.0} items/s",
        items / secs
    );
    // The full-text index lags ingest under load; how long until it caught up.
    let lag = store.search_index_status().await.expect("status");
    let waited = Instant::now();
    while store
        .search_index_status()
        .await
        .expect("status")
        .unindexed_chunks
        > 0
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    println!(
        "full-text index: {} chunks ({} items) behind at the last ack, caught up {:.2}s later",
        lag.unindexed_chunks,
        lag.unindexed_items,
        waited.elapsed().as_secs_f64()
    );
    store.close().await.expect("close");
}
