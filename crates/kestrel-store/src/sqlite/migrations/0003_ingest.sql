-- Kestrel store schema, version 3: cheaper ingest.
--
-- Dedup without a row per record: every ingest request writes one chunk per trace it touches
-- (n = 0 when it carried no item of that trace), and the chunk keeps the ids of all the records
-- of that request for that trace, 16 bytes each, concatenated. A record is a duplicate when its
-- id is among its trace's chunk ids. Chunks written before version 3 have NULL here: their ids
-- stay in `record_ids`, which is still read for those traces and no longer written.
ALTER TABLE item_chunks ADD COLUMN record_ids BLOB;

-- (run, step) pairs whose traces changed since the step's figures were last summarized. Ingest
-- adds a row (in the same transaction) for every run step whose traces a request touched; the
-- summarizer (step_cache) recomputes those steps in the background and removes their rows.
CREATE TABLE step_dirty (
    run_rowid INTEGER NOT NULL,
    step      INTEGER NOT NULL,
    PRIMARY KEY (run_rowid, step)
) WITHOUT ROWID;
