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

/// After `close`, the database file alone holds every acknowledged record, even while the
/// store's readers are still open (a server stopping closes them after the writer): a copy of
/// that one file, without its WAL, is a complete backup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_close_the_database_file_alone_holds_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    let turn = new_record_id();
    store
        .ingest(batch(vec![
            Record::TraceOpen(open("kept", T0, turn, "p")),
            msg("kept", T0 + 1, 3, 4, 0.5),
            close("kept", T0 + 2, turn, Some(RolloutStatus::Completed)),
        ]))
        .await
        .expect("ingest");
    // A reader reads, so the readers' connections are open.
    assert!(store.get_trace("kept").await.expect("get").is_some());
    store.close().await.expect("close");
    let copy = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        dir.path().join("kestrel.sqlite3"),
        copy.path().join("kestrel.sqlite3"),
    )
    .expect("copy the database file alone");
    drop(store);
    let restored = SqliteStore::open(SqliteConfig::new(copy.path())).expect("open the copy");
    let t = restored
        .get_trace("kept")
        .await
        .expect("get")
        .expect("trace");
    assert_eq!(
        (t.items.len(), t.summary.status),
        (1, RolloutStatus::Completed)
    );
    restored.close().await.expect("close");
}

/// A trace's opening, a message and a tool call (no close).
fn opened_with_items(trace: &str, turn: uuid::Uuid) -> Vec<Record> {
    vec![
        Record::TraceOpen(open(trace, T0, turn, "p")),
        msg(trace, T0 + 1, 3, 4, 0.5),
        tool(trace, T0 + 2, "search"),
    ]
}

/// Data written by schema version 2 kept one `record_ids` row per record and no ids in its chunks;
/// retries of those records must still be recognized after the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_ids_from_schema_2_still_dedup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let turn = new_record_id();
    let first = opened_with_items("old", turn);
    {
        let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
        store.ingest(batch(first.clone())).await.expect("ingest");
        store.close().await.expect("close");
    }
    {
        // Make the file look as version 2 left it.
        let conn = rusqlite::Connection::open(dir.path().join("kestrel.sqlite3")).expect("file");
        conn.execute("UPDATE item_chunks SET record_ids = NULL", [])
            .expect("forget chunk ids");
        for r in &first {
            conn.execute(
                "INSERT INTO record_ids(id) VALUES (?1)",
                [r.id().as_bytes().as_slice()],
            )
            .expect("legacy id");
        }
    }
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("reopen");
    let mut retry = first.clone();
    retry.push(close("old", T0 + 3, turn, Some(RolloutStatus::Completed)));
    let r = store.ingest(batch(retry.clone())).await.expect("retry");
    assert_eq!((r.accepted, r.duplicates), (1, 3), "only the close is new");
    let r = store.ingest(batch(retry)).await.expect("retry again");
    assert_eq!((r.accepted, r.duplicates), (0, 4));
    let t = store.get_trace("old").await.expect("get").expect("trace");
    assert_eq!(
        (t.items.len(), t.summary.status),
        (2, RolloutStatus::Completed)
    );
    store.close().await.expect("close");
}

/// The whole trace's JSON copies the chunks' item JSON when it is in the form Kestrel writes; a
/// chunk in any other form (here: pretty-printed, as another encoder could have left it) is read
/// through the typed path, with the same answer; a corrupt one is an error, as for `get_trace`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_json_falls_back_for_chunks_in_another_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    let turn = new_record_id();
    let records = opened_with_items("odd", turn);
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    store.ingest(batch(records)).await.expect("ingest");
    let compact = kestrel_store::testsuite::fixtures::trace(&store, "odd").await;
    store.close().await.expect("close");
    let path = dir.path().join("kestrel.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).expect("file");
        let pretty = serde_json::to_vec_pretty(&compact.items).expect("json");
        let data = zstd::bulk::compress(&pretty, 1).expect("zstd");
        conn.execute("UPDATE item_chunks SET data = ?1 WHERE n > 0", [data])
            .expect("rewrite the chunk");
    }
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("reopen");
    let reread = kestrel_store::testsuite::fixtures::trace(&store, "odd").await;
    assert_eq!(reread, compact, "the same trace from the pretty chunk");
    store.close().await.expect("close");
    {
        let conn = rusqlite::Connection::open(&path).expect("file");
        conn.execute("UPDATE item_chunks SET data = X'00' WHERE n > 0", [])
            .expect("break the chunk");
    }
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("reopen");
    let err = store
        .get_trace_json("odd")
        .await
        .expect_err("a corrupt chunk");
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
    store.close().await.expect("close");
}

/// Dedup skips reading a trace's ids when every incoming id is above the greatest stored one
/// (UUIDv7 ids grow with time); retries, and new records whose ids are not above it (another
/// thread's ids in the same millisecond), must still be told apart exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_with_ids_below_and_above_the_greatest_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    let turn = new_record_id();
    // Made first, so its ids are below every id made after it.
    let early = msg("t", T0 + 5, 1, 1, 0.0);
    let a = vec![
        Record::TraceOpen(open("t", T0, turn, "p")),
        msg("t", T0 + 1, 1, 1, 0.0),
    ];
    let b = vec![tool("t", T0 + 2, "search"), msg("t", T0 + 3, 1, 1, 0.0)];
    let r = store.ingest(batch(a.clone())).await.expect("a");
    assert_eq!((r.accepted, r.duplicates), (2, 0));
    let r = store.ingest(batch(b.clone())).await.expect("b, ids above");
    assert_eq!((r.accepted, r.duplicates), (2, 0));
    let r = store.ingest(batch(a.clone())).await.expect("retry a");
    assert_eq!((r.accepted, r.duplicates), (0, 2));
    let mut mixed = b.clone();
    mixed.push(early.clone());
    let r = store
        .ingest(batch(mixed))
        .await
        .expect("b again with a new, older id");
    assert_eq!((r.accepted, r.duplicates), (1, 2));
    let r = store
        .ingest(batch(vec![early]))
        .await
        .expect("retry the older one");
    assert_eq!((r.accepted, r.duplicates), (0, 1));
    let t = store.get_trace("t").await.expect("get").expect("trace");
    assert_eq!(t.items.len(), 4, "each item stored once");
    assert_eq!(t.summary.messages, 3);
    store.close().await.expect("close");
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

/// `chunk_bounds` and `trace_bounds` (schema 6): what ingest keeps is never below the exact bound
/// (the greatest sort time of the traces of every id up to the block), whatever the arrival
/// order; a store of schema 5 gets the exact bounds at upgrade, and its searches stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_bounds_cover_every_id_and_are_rebuilt_at_upgrade() {
    const EXACT: [(&str, &str); 2] = [
        (
            "chunk_bounds",
            "SELECT block, max(m) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING)
             FROM (SELECT c.id >> 10 AS block, max(t.sort_ts) AS m
                   FROM item_chunks c JOIN traces t ON t.id = c.trace_rowid
                   WHERE c.n > 0 GROUP BY block)",
        ),
        (
            "trace_bounds",
            "SELECT block, max(m) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING)
             FROM (SELECT id >> 10 AS block, max(sort_ts) AS m FROM traces GROUP BY block)",
        ),
    ];
    let read = |conn: &rusqlite::Connection, sql: &str| -> Vec<(i64, i64)> {
        let mut select = conn.prepare(sql).expect("select");
        select
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("bounds")
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    // 3,000 requests of one trace each (about three blocks of chunk ids), sort times in a
    // scrambled order, every 7th a message naming a rare word; a trace whose sort time grows.
    let turn = new_record_id();
    store
        .ingest(batch(vec![kestrel_store::testsuite::fixtures::tags(
            "grows",
            T0,
            &["x"],
        )]))
        .await
        .expect("early record");
    let at = |i: i64| T0 + ((i * 7_919) % 3_000) * 1_000_000;
    for i in 0..3_000i64 {
        let id = format!("t{i}");
        let mut records = vec![Record::TraceOpen(open(&id, at(i), turn, "p"))];
        if i % 7 == 0 {
            records.push(msg(&id, at(i) + 1, 1, 1, 0.0));
        }
        store.ingest(batch(records)).await.expect("ingest");
    }
    store
        .ingest(batch(vec![Record::TraceOpen(open(
            "grows",
            T0 + 4_000_000_000,
            turn,
            "p",
        ))]))
        .await
        .expect("opening after the early record");
    let filter = TraceFilter {
        q: Some("answer".into()),
        limit: Some(5),
        ..TraceFilter::default()
    };
    kestrel_store::testsuite::search::wait_for_index(&store).await;
    let before = kestrel_store::testsuite::fixtures::list_all(&store, &filter).await;
    assert_eq!(before.len(), 3_000 / 7 + 1);
    store.close().await.expect("close");

    let path = dir.path().join("kestrel.sqlite3");
    {
        let conn = rusqlite::Connection::open(&path).expect("file");
        for (table, exact) in EXACT {
            let kept = read(
                &conn,
                &format!("SELECT block, ts_bound FROM {table} ORDER BY block"),
            );
            let exact = read(&conn, exact);
            assert!(exact.len() >= 3, "{table}: {exact:?}");
            for (block, bound) in &exact {
                let cover = kept.iter().find(|(b, _)| b >= block);
                assert!(
                    cover.is_some_and(|(_, kept)| kept >= bound),
                    "{table} block {block}: exact {bound}, kept {cover:?}"
                );
            }
            assert!(
                kept.windows(2).all(|w| w[0].1 <= w[1].1),
                "{table}: {kept:?}"
            );
        }
        // Make the file look as version 5 left it.
        conn.execute_batch(
            "DROP TABLE chunk_bounds; DROP TABLE trace_bounds;
             ALTER TABLE item_chunks DROP COLUMN record_hashes; PRAGMA user_version = 5",
        )
        .expect("back to version 5");
    }
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("upgrade");
    {
        let conn = rusqlite::Connection::open(&path).expect("file");
        for (table, exact) in EXACT {
            let rebuilt = read(
                &conn,
                &format!("SELECT block, ts_bound FROM {table} ORDER BY block"),
            );
            assert_eq!(rebuilt, read(&conn, exact), "{table}");
        }
    }
    let after = kestrel_store::testsuite::fixtures::list_all(&store, &filter).await;
    let ids = |l: &[caribou_model::api::TraceSummary]| {
        l.iter().map(|t| t.trace_id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&after), ids(&before));
    store.close().await.expect("close");
}
