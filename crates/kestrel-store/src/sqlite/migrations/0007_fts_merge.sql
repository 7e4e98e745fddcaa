-- Kestrel store schema, version 7: the full-text index leaves more of its merging for idle time.
--
-- FTS5 merges the segments of `chunk_text` as it writes them: by default once a level holds 4
-- segments ('automerge'). That work runs in the indexer's slices on the writer thread, taking
-- turns with ingest. With 8 a level waits for twice as many segments: the merging done under
-- ingest costs the writer less (its CPU per item 5% lower in bench 2 with 4 clients), and the
-- indexer merges levels of 4 segments or more when the writer is idle (`indexer::merge_slice`),
-- so once ingest pauses searches read fewer segments than with the default alone (5 against 13
-- after loading bench 3's 1M items).
INSERT INTO chunk_text(chunk_text, rank) VALUES ('automerge', 8);
