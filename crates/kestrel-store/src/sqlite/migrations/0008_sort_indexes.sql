-- Kestrel store schema, version 8: the cost, duration and token sorts walk an index.
--
-- Until now those three orders had no index: a list sorted by cost read and sorted every
-- matching trace (0.7 s warm, tens of seconds cold, for the 1M traces of a 10M-item store).
-- With these, a list in one of those orders reads candidates from its index in order and stops
-- at the page, as the time and grade orders do (`traces::window`). Each expression is the one
-- the list's order uses (`traces::order`), character for character: SQLite uses an index on an
-- expression only for that same expression. Costs the writer one more index entry per trace row
-- written for each.
CREATE INDEX IF NOT EXISTS traces_by_cost ON traces(cost_usd);
CREATE INDEX IF NOT EXISTS traces_by_duration ON traces(COALESCE(ended_at - started_at, -1));
CREATE INDEX IF NOT EXISTS traces_by_tokens ON traces((input_tokens + output_tokens));
