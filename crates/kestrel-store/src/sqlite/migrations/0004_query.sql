-- Kestrel store schema, version 4: fast reads at scale.
--
-- Per-step summary cache (see sqlite/step_cache.rs): each run step's figures, trusted only while
-- the step has no row in `step_dirty` (0003). `figures` is JSON written and read by step_cache
-- only (floats as their bits); `first_created` is the earliest created_at of the step's traces.
CREATE TABLE step_summary (
    run_rowid     INTEGER NOT NULL,
    step          INTEGER NOT NULL,
    first_created INTEGER NOT NULL,
    figures       TEXT NOT NULL,
    PRIMARY KEY (run_rowid, step)
) WITHOUT ROWID;

-- Steps stored before this version have no summary: mark them all dirty, the summarizer fills
-- them in the background (reads compute them live meanwhile).
INSERT OR IGNORE INTO step_dirty(run_rowid, step)
    SELECT DISTINCT run_rowid, step FROM traces WHERE run_rowid IS NOT NULL AND step IS NOT NULL;

-- Traces that name a run that did not exist when they were stored (run_rowid NULL): their steps
-- are always computed live. Partial, so it costs nothing for the usual traces.
CREATE INDEX traces_orphan_run_step ON traces(run_id, step)
    WHERE run_rowid IS NULL AND run_id IS NOT NULL;
