-- Kestrel store schema, version 1.
-- Times are microseconds since the Unix epoch. Integer primary keys (`id`) are internal; public ids
-- (trace_id, run_id, project name) are unique text columns.

CREATE TABLE projects (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    run_id        TEXT NOT NULL UNIQUE,
    project_rowid INTEGER NOT NULL REFERENCES projects(id),
    phase         TEXT NOT NULL,
    name          TEXT,
    config        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX runs_by_project ON runs(project_rowid, created_at);

CREATE TABLE run_steps (
    run_rowid  INTEGER NOT NULL REFERENCES runs(id),
    step       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_rowid, step)
) WITHOUT ROWID;

CREATE TABLE datapoints (
    id            INTEGER PRIMARY KEY,
    project_rowid INTEGER NOT NULL REFERENCES projects(id),
    dp_id         TEXT NOT NULL,
    input         TEXT NOT NULL,
    expected      TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (project_rowid, dp_id)
);

CREATE TABLE run_datapoints (
    run_rowid       INTEGER NOT NULL REFERENCES runs(id),
    datapoint_rowid INTEGER NOT NULL REFERENCES datapoints(id),
    PRIMARY KEY (run_rowid, datapoint_rowid)
) WITHOUT ROWID;

-- Every ingested record id, once: the dedup set. 16-byte UUIDs, time-ordered (v7) so inserts
-- land at the end of the b-tree.
CREATE TABLE record_ids (
    id BLOB PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE traces (
    id            INTEGER PRIMARY KEY,
    trace_id      TEXT NOT NULL UNIQUE,
    -- NULL until the trace's opening arrives (items may come first).
    project_rowid INTEGER REFERENCES projects(id),
    run_id        TEXT,
    run_rowid     INTEGER REFERENCES runs(id),
    phase         TEXT,
    step          INTEGER,
    datapoint_id  TEXT,
    model_name    TEXT,
    -- The winning status and its ts (NULL ts: no status record, opening or close seen yet).
    status        TEXT NOT NULL DEFAULT 'RUNNING',
    status_ts     INTEGER,
    error         TEXT,
    traceback     TEXT,
    error_ts      INTEGER,
    started_at    INTEGER,
    ended_at      INTEGER,
    -- started_at, or the earliest ts of any record while there is no opening nor item: the time
    -- lists sort by, never NULL so keyset pagination stays simple.
    sort_ts       INTEGER NOT NULL,
    min_ts        INTEGER NOT NULL,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL NOT NULL DEFAULT 0,
    messages      INTEGER NOT NULL DEFAULT 0,
    tool_calls    INTEGER NOT NULL DEFAULT 0,
    items         INTEGER NOT NULL DEFAULT 0,
    -- JSON object, merged (top-level keys replace); metadata_ts holds each key's ts so that the
    -- newest value wins whatever the arrival order.
    metadata      TEXT NOT NULL DEFAULT '{}',
    metadata_ts   TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL
);
CREATE INDEX traces_by_project ON traces(project_rowid, sort_ts);
CREATE INDEX traces_by_time ON traces(sort_ts);
CREATE INDEX traces_by_run_step ON traces(run_id, step);
CREATE INDEX traces_by_status ON traces(status);
CREATE INDEX traces_by_datapoint ON traces(datapoint_id);

-- Items of one trace written by one ingest request: zstd(level 1) of a JSON array of StoredItem.
CREATE TABLE item_chunks (
    id          INTEGER PRIMARY KEY,
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    n           INTEGER NOT NULL,
    min_ts      INTEGER NOT NULL,
    max_ts      INTEGER NOT NULL,
    data        BLOB NOT NULL
);
CREATE INDEX item_chunks_by_trace ON item_chunks(trace_rowid);

-- Grade items again, one row each, for aggregates. `value` is the GradeValue as JSON;
-- value_num its numeric reading (numbers, bools as 1/0; NULL for labels).
CREATE TABLE grades (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    name        TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    item_id     BLOB NOT NULL,
    value_num   REAL,
    value       TEXT NOT NULL,
    PRIMARY KEY (trace_rowid, name, ts, item_id)
) WITHOUT ROWID;

CREATE TABLE trace_tags (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    tag         TEXT NOT NULL,
    PRIMARY KEY (trace_rowid, tag)
) WITHOUT ROWID;
CREATE INDEX trace_tags_by_tag ON trace_tags(tag, trace_rowid);

-- One row per turn (trace_run block). A close may arrive before its opening: started_at NULL.
CREATE TABLE turns (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    turn_id     BLOB NOT NULL,
    started_at  INTEGER,
    ended_at    INTEGER,
    status      TEXT,
    PRIMARY KEY (trace_rowid, turn_id)
) WITHOUT ROWID;
