-- Kestrel store schema, version 5.
--
-- The greatest record id stored for the trace (NULL: none since version 3, or the trace has ids in
-- the `record_ids` table of version 2). Ids are UUIDv7, time ordered, so a request whose ids are
-- all greater holds no duplicate and its trace's chunk ids need not be read: a long trace sent in
-- many small batches costs no more per batch than a short one. Retries (ids not greater) are
-- checked against the chunk ids.
ALTER TABLE traces ADD COLUMN max_record_id BLOB;
