-- Rotation links on the new row. A rotation now writes on the row it inserts the id of the row
-- it superseded (`predecessor`, set once, never updated), and the row before that is found
-- through it by primary key. So nothing looks rows up by `successor` any more and its index
-- goes: every upload inserted an entry into it for the new row and another for the old row's
-- update, a third of the index writes an upload made (docs/benchmarks.md "What an upload
-- writes").
-- Adding a NULL column rewrites nothing (PostgreSQL, SQLite). The rows superseded within the
-- last grace periods are linked from their successors here; rows an instance of the previous
-- version writes during a rolling upgrade are not (see migrations/README.md, "History").
ALTER TABLE sessions ADD COLUMN predecessor TEXT;

UPDATE sessions SET predecessor = older.id
FROM sessions AS older
WHERE older.successor = sessions.id AND older.id <> sessions.id;

DROP INDEX sessions_successor_idx;
