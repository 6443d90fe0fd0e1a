-- match_progress is keyed by (source, record_key) and read by it alone:
-- kept in the key's own B-tree (WITHOUT ROWID), a full match run's million
-- progress rows are written once instead of twice (a table ordered by
-- rowid plus the key's index). matches stays as it is: its person_no index
-- would carry the whole key instead of a rowid, and an A/B of that showed
-- no gain.
CREATE TABLE match_progress_by_key (
    source          TEXT NOT NULL,
    record_key      TEXT NOT NULL,
    record_version  INTEGER NOT NULL,
    rules_version   TEXT NOT NULL,
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (source, record_key)
) WITHOUT ROWID;
INSERT INTO match_progress_by_key (source, record_key, record_version, rules_version, run_id)
SELECT source, record_key, record_version, rules_version, run_id FROM match_progress;
DROP TABLE match_progress;
ALTER TABLE match_progress_by_key RENAME TO match_progress;
