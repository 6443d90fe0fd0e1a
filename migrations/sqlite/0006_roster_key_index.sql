-- The person number becomes a UNIQUE INDEX instead of the PRIMARY KEY, so a
-- first load into an empty table can drop it and build it once at the end
-- (SQLite cannot drop the automatic index behind a TEXT PRIMARY KEY). The
-- uniqueness rule itself is unchanged: `pensioners_person_no` is UNIQUE and
-- vigil refuses to start while it is missing and cannot be rebuilt.
-- SQLite cannot drop a primary key, so the table is rebuilt.

CREATE TABLE pensioners_new (
    person_no          TEXT NOT NULL,
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

INSERT INTO pensioners_new (person_no, name, name_norm, name_key, id_number, id_upgraded, sex,
    birth_date, insured_region, residence_region, benefit_type, monthly_amount_fen, bank_account,
    benefit_start, status, last_certified, phone, content_hash, first_seen, missing_since)
SELECT person_no, name, name_norm, name_key, id_number, id_upgraded, sex,
    birth_date, insured_region, residence_region, benefit_type, monthly_amount_fen, bank_account,
    benefit_start, status, last_certified, phone, content_hash, first_seen, missing_since
FROM pensioners;

DROP TABLE pensioners;
ALTER TABLE pensioners_new RENAME TO pensioners;

CREATE UNIQUE INDEX pensioners_person_no ON pensioners (person_no);
CREATE INDEX pensioners_id_number ON pensioners (id_number);
