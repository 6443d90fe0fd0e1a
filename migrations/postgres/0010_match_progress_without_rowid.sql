-- SQLite keeps match_progress in its key's own B-tree from here on
-- (WITHOUT ROWID); a PostgreSQL table is a heap with its key's index
-- already, so nothing changes here. The migration keeps the two backends'
-- versions in step.
SELECT 1;
