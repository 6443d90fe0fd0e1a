-- Matches of death records to pensioners, with the explanation a
-- caseworker reads, and the pairs reviewers rejected (never proposed again).
-- Applied migrations never change; later changes come as new files.

CREATE TABLE matches (
    source         TEXT NOT NULL,
    record_key     TEXT NOT NULL,
    person_no      TEXT NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    band           TEXT NOT NULL,
    runner_up      TEXT,
    margin         DOUBLE PRECISION,
    explanation    TEXT NOT NULL,
    rules_version  TEXT NOT NULL,
    run_id         BIGINT NOT NULL REFERENCES runs (id),
    matched_at     TEXT NOT NULL,
    PRIMARY KEY (source, record_key)
);
CREATE INDEX matches_person ON matches (person_no);

CREATE TABLE rejected_pairs (
    source       TEXT NOT NULL,
    record_key   TEXT NOT NULL,
    person_no    TEXT NOT NULL,
    rejected_by  TEXT NOT NULL,
    rejected_at  TEXT NOT NULL,
    PRIMARY KEY (source, record_key, person_no)
);
