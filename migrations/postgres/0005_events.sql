-- What the matcher has looked at, and the deaths it fused.
-- Applied migrations never change; later changes come as new files.

-- Each death record the matcher has looked at: under which rules, at which
-- version of the record. `vigil match` (without --full) takes only records
-- missing here, changed since, or looked at under other rules.
CREATE TABLE match_progress (
    source          TEXT NOT NULL,
    record_key      TEXT NOT NULL,
    record_version  INTEGER NOT NULL,
    rules_version   TEXT NOT NULL,
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (source, record_key)
);

-- The records a running match has taken, at the version it read; written
-- to match_progress when the run succeeds, dropped when it fails.
CREATE TABLE match_claims (
    run_id          BIGINT NOT NULL REFERENCES runs (id),
    source          TEXT NOT NULL,
    record_key      TEXT NOT NULL,
    record_version  INTEGER NOT NULL,
    PRIMARY KEY (run_id, source, record_key)
);

-- One death per matched pensioner, fused from every source's records:
-- the date chosen by source precedence, all records with their own dates,
-- the evidence strength of the independent sources and the timeline flags.
CREATE TABLE death_events (
    person_no          TEXT PRIMARY KEY,
    death_date         DATE NOT NULL,
    band               TEXT NOT NULL,
    sources            TEXT NOT NULL,
    evidence_strength  DOUBLE PRECISION NOT NULL,
    flags              TEXT NOT NULL,
    records            TEXT NOT NULL,
    rules_version      TEXT NOT NULL,
    run_id             BIGINT NOT NULL REFERENCES runs (id),
    updated_at         TEXT NOT NULL
);
