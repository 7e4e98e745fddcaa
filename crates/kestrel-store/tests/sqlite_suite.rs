//! The shared store suite, run against the SQLite store in a temporary directory.

use kestrel_store::testsuite::Fixture;
use kestrel_store::{SqliteConfig, SqliteStore};

fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(SqliteConfig::new(dir.path())).expect("open");
    Fixture::new(store, dir)
}

kestrel_store::store_suite!(|| async { fresh() });
