-- The content hash of every record stored with a chunk (8 bytes each, little-endian, in the order
-- of `record_ids`): a record id sent again with other content is refused instead of silently
-- taken as a retry. Chunks written before keep NULL: their records count as retries whatever
-- their content.
ALTER TABLE item_chunks ADD COLUMN record_hashes BLOB;
