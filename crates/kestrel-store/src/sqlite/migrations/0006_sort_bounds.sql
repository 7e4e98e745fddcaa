-- Kestrel store schema, version 6: newest-first searches led by a rare term stop at the page.
--
-- Per block of 1,024 ids (block = id >> 10), an upper bound of the sort time (`traces.sort_ts`)
-- of every trace with an id below the block's end: `chunk_bounds` over the ids of chunks with
-- items (the trace of each chunk), `trace_bounds` over trace rowids. Bounds never decrease from one block to the
-- next; a block may have no row, the next row covers it. A search led by a rare word or value
-- reads its chunks or traces in descending id order; once it holds a page of traces all newer
-- than the bound of the ids left, no id left can bring a newer trace, and it stops
-- (sqlite/lead_walk.rs). Ingest keeps the rows in the same transaction (sqlite/sort_bounds.rs).
CREATE TABLE chunk_bounds (
    block    INTEGER PRIMARY KEY,
    ts_bound INTEGER NOT NULL
);
CREATE TABLE trace_bounds (
    block    INTEGER PRIMARY KEY,
    ts_bound INTEGER NOT NULL
);

-- Data stored before this version: each block's greatest sort time, carried forward.
INSERT INTO chunk_bounds(block, ts_bound)
    SELECT block, max(m) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING)
    FROM (SELECT c.id >> 10 AS block, max(t.sort_ts) AS m
          FROM item_chunks c JOIN traces t ON t.id = c.trace_rowid
          WHERE c.n > 0 GROUP BY block);
INSERT INTO trace_bounds(block, ts_bound)
    SELECT block, max(m) OVER (ORDER BY block ROWS UNBOUNDED PRECEDING)
    FROM (SELECT id >> 10 AS block, max(sort_ts) AS m FROM traces GROUP BY block);
