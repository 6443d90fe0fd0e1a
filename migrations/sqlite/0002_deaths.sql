-- Death records from the connectors, the versions they replaced, public-
-- security cancellations that are not deaths, and each connector's watermark.
-- Applied migrations never change; later changes come as new files.

CREATE TABLE death_records (
    source            TEXT NOT NULL,
    record_key        TEXT NOT NULL,
    name_raw          TEXT NOT NULL,
    name_norm         TEXT NOT NULL,
    name_key          TEXT NOT NULL,
    id_raw            TEXT NOT NULL,
    id_number         TEXT,
    id_status         TEXT NOT NULL,
    id_candidates     INTEGER NOT NULL DEFAULT 0,
    sex               INTEGER,
    birth_date        DATE,
    birth_year_min    INTEGER,
    birth_year_max    INTEGER,
    death_date        DATE NOT NULL,
    death_date_latest BOOLEAN NOT NULL DEFAULT FALSE,
    event_date        DATE,
    region            TEXT,
    place             TEXT,
    origin            TEXT NOT NULL,
    received_at       TEXT NOT NULL,
    raw_sha256        TEXT NOT NULL,
    raw               TEXT NOT NULL,
    run_id            BIGINT NOT NULL REFERENCES runs (id),
    version           INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (source, record_key)
);
-- No secondary indexes on id_number or name_key: nothing queries death
-- records by them (matching loads the records into memory), and their
-- random-order inserts dirtied nearly every index leaf page in every batch,
-- so a pull slowed as the table grew (1M records: 17k/s instead of 48k/s).

CREATE TABLE non_death_events (
    source            TEXT NOT NULL,
    record_key        TEXT NOT NULL,
    reason            TEXT NOT NULL,
    event_date        DATE,
    name_raw          TEXT NOT NULL,
    name_norm         TEXT NOT NULL,
    name_key          TEXT NOT NULL,
    id_raw            TEXT NOT NULL,
    id_number         TEXT,
    id_status         TEXT NOT NULL,
    sex               INTEGER,
    birth_date        DATE,
    region            TEXT,
    origin            TEXT NOT NULL,
    received_at       TEXT NOT NULL,
    raw_sha256        TEXT NOT NULL,
    raw               TEXT NOT NULL,
    run_id            BIGINT NOT NULL REFERENCES runs (id),
    version           INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (source, record_key)
);
CREATE INDEX non_death_events_id_number ON non_death_events (id_number);

-- Every version of a death record or non-death event that another replaced
-- ('updated') or that arrived after a newer one and was not applied ('stale').
CREATE TABLE source_record_history (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    record_table TEXT NOT NULL,
    source       TEXT NOT NULL,
    record_key   TEXT NOT NULL,
    version      INTEGER NOT NULL,
    origin       TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    raw_sha256   TEXT NOT NULL,
    raw          TEXT NOT NULL,
    run_id       BIGINT NOT NULL,
    replaced_at  TEXT NOT NULL,
    replaced_by_run BIGINT NOT NULL,
    why          TEXT NOT NULL
);
CREATE INDEX source_record_history_key ON source_record_history (source, record_key);

-- Named watermark values (`since`, the in-progress cursor) per source.
CREATE TABLE connector_state (
    source     TEXT NOT NULL,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    run_id     BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (source, name)
);

-- Files (civil-affairs CSVs, funeral JSONL) taken, with the hash of the
-- content taken: a file whose content changes is taken again.
CREATE TABLE connector_files (
    source     TEXT NOT NULL,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    records    BIGINT NOT NULL,
    run_id     BIGINT NOT NULL,
    taken_at   TEXT NOT NULL,
    PRIMARY KEY (source, name)
);
