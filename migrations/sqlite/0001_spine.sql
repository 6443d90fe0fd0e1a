-- The spine: pensioners and their history, runs, quarantine, the audit log.
-- Applied migrations never change; later changes come as new files.

CREATE TABLE pensioners (
    person_no          TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    name_norm          TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    id_number          TEXT NOT NULL,
    id_upgraded        BOOLEAN NOT NULL DEFAULT FALSE,
    sex                INTEGER NOT NULL,
    birth_date         DATE NOT NULL,
    insured_region     TEXT NOT NULL,
    residence_region   TEXT NOT NULL,
    benefit_type       TEXT NOT NULL,
    monthly_amount_fen BIGINT NOT NULL,
    bank_account       TEXT NOT NULL,
    benefit_start      DATE NOT NULL,
    status             TEXT NOT NULL,
    last_certified     DATE,
    phone              TEXT,
    content_hash       BIGINT NOT NULL,
    first_seen         DATE NOT NULL,
    missing_since      DATE
);
CREATE INDEX pensioners_id_number ON pensioners (id_number);

CREATE TABLE runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    kind          TEXT NOT NULL,
    source        TEXT NOT NULL,
    file          TEXT,
    file_sha256   TEXT,
    as_of         DATE,
    started_at    TEXT NOT NULL,
    finished_at   TEXT,
    status        TEXT NOT NULL,
    read_count    BIGINT NOT NULL DEFAULT 0,
    inserted      BIGINT NOT NULL DEFAULT 0,
    changed       BIGINT NOT NULL DEFAULT 0,
    unchanged     BIGINT NOT NULL DEFAULT 0,
    quarantined   BIGINT NOT NULL DEFAULT 0,
    missing       BIGINT NOT NULL DEFAULT 0,
    details       TEXT NOT NULL DEFAULT '{}',
    message       TEXT
);

CREATE TABLE pensioner_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_no  TEXT NOT NULL,
    run_id     BIGINT NOT NULL REFERENCES runs (id),
    as_of      DATE NOT NULL,
    field      TEXT NOT NULL,
    before     TEXT,
    after      TEXT
);
CREATE INDEX pensioner_history_person ON pensioner_history (person_no);

CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      BIGINT NOT NULL REFERENCES runs (id),
    source      TEXT NOT NULL,
    file        TEXT,
    line        BIGINT,
    record_key  TEXT,
    reason      TEXT NOT NULL,
    raw         TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX quarantine_run ON quarantine (run_id);

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);

-- Append-only: the engine never edits or deletes an entry. Someone with write
-- access to the file can still drop these triggers; `vigil audit verify`
-- catches what they then change.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
