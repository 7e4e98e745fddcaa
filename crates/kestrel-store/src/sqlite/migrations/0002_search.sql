-- Kestrel store schema, version 2: search.
--
-- Side tables kept current by ingest, in the same transaction as the trace they describe, so a
-- search on them sees exactly what was acknowledged. Each is indexed by value for lookups.

-- Top-level metadata keys of a trace, the current value of each. `num`: numbers, bools as 1/0,
-- strings that read as a finite number; `text`: strings, the JSON text of numbers, true/false.
-- Nested values (objects, arrays) and nulls have no row.
CREATE TABLE trace_meta (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    key         TEXT NOT NULL,
    num         REAL,
    text        TEXT,
    PRIMARY KEY (trace_rowid, key)
) WITHOUT ROWID;
CREATE INDEX trace_meta_by_num ON trace_meta(key, num);
CREATE INDEX trace_meta_by_text ON trace_meta(key, text);

-- Names of the tools a trace ran.
CREATE TABLE trace_tools (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    name        TEXT NOT NULL,
    PRIMARY KEY (trace_rowid, name)
) WITHOUT ROWID;
CREATE INDEX trace_tools_by_name ON trace_tools(name, trace_rowid);

-- Models of a trace: its model_name and the model of each of its messages.
CREATE TABLE trace_models (
    trace_rowid INTEGER NOT NULL REFERENCES traces(id),
    model       TEXT NOT NULL,
    PRIMARY KEY (trace_rowid, model)
) WITHOUT ROWID;
CREATE INDEX trace_models_by_model ON trace_models(model, trace_rowid);

CREATE INDEX grades_by_value ON grades(name, value_num);

-- Full-text index of message and tool text: one row per item chunk (rowid = item_chunks.id).
-- Contentless: it answers which chunks match; the text itself stays in the chunk. Filled by the
-- writer thread in the background, outside the ingest transactions (see sqlite/indexer.rs).
CREATE VIRTUAL TABLE chunk_text USING fts5(body, content = '', tokenize = 'unicode61 remove_diacritics 2');

-- The indexer's watermark: every chunk with id <= indexed_chunk is in chunk_text. Chunk ids only
-- grow (one writer, no deletes), so the chunks still to index are exactly those above it.
CREATE TABLE search_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_chunk INTEGER NOT NULL
);
INSERT INTO search_state(id, indexed_chunk) VALUES (1, 0);
