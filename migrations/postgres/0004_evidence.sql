-- Evidence of life (spec §5) and remote video verification results (spec
-- §6): what proves a pensioner was alive on a date. The matcher reads them
-- as counter-evidence against a death; the certification scheduler will
-- read them as proofs of life. Rows are only ever inserted by an import.
-- Applied migrations never change; later changes come as new files.

CREATE TABLE life_evidence (
    id           BIGSERIAL PRIMARY KEY,
    -- Normalised 18-character number (a legacy 15-digit one upgraded).
    id_number    TEXT NOT NULL,
    -- medical_settlement, in_person_service, bank_counter, face_app, video_verified
    event_type   TEXT NOT NULL,
    event_date   DATE NOT NULL,
    -- The feed's own reference; empty when it gave none.
    source_ref   TEXT NOT NULL,
    run_id       BIGINT NOT NULL REFERENCES runs (id),
    received_at  TEXT NOT NULL,
    -- The same event delivered again (the same file re-imported, or an
    -- overlapping feed) is recognised, not stored twice.
    UNIQUE (id_number, event_type, event_date, source_ref)
);
-- The unique key starts with id_number, so it also serves lookups by ID.

CREATE TABLE video_sessions (
    id            BIGSERIAL PRIMARY KEY,
    id_number     TEXT NOT NULL,
    -- RFC 3339 with the offset the file gave (2026-11-26T09:30:00+08:00).
    session_at    TEXT NOT NULL,
    -- The same instant in UTC, RFC 3339, for ordering across offsets.
    session_utc   TEXT NOT NULL,
    -- The calendar date of the session in China (UTC+8): what is compared
    -- with a death date.
    session_date  DATE NOT NULL,
    -- passed, failed or no_show; only passed proves life.
    result        TEXT NOT NULL,
    operator      TEXT NOT NULL,
    note          TEXT NOT NULL,
    run_id        BIGINT NOT NULL REFERENCES runs (id),
    received_at   TEXT NOT NULL,
    UNIQUE (id_number, session_at)
);
-- Likewise, this unique key serves lookups by ID.
