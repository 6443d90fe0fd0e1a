-- The suspension queue (issue 19): users, cases with their history, tips,
-- vigil's own payment state and the instructions it hands the payroll, the
-- payment ledger read back, and the overpayments and back pay owed.
-- Nothing here is ever deleted: cases, events, proposals, tips, payment
-- changes and recoveries are only inserted; a case's row holds the fold of
-- its events for listing. Applied migrations never change.

-- The people who work the queue. password_hash is an argon2 PHC string.
CREATE TABLE users (
    name           TEXT PRIMARY KEY,
    role           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     TEXT NOT NULL,
    changed_at     TEXT NOT NULL
);

-- One case per pensioner and reason (death_match, tip, certification).
-- state is the case machine's (open, proposed, approved); decision the
-- approved action that decided it, if any. evidence: the death records
-- behind a death_match case, as JSON [{source, record_key, version, band}],
-- sorted; what a later run compares to say the evidence changed.
CREATE TABLE cases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    person_no     TEXT NOT NULL,
    reason        TEXT NOT NULL,
    band          TEXT,
    state         TEXT NOT NULL,
    decision      TEXT,
    death_date    DATE,
    evidence      TEXT NOT NULL DEFAULT '[]',
    opened_at     TEXT NOT NULL,
    opened_by     TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX cases_person ON cases (person_no, reason);
CREATE INDEX cases_state_band ON cases (state, band);

-- A case's history, in order: the engine's entries (opened, evidence
-- changed, payment held, reopened) and the case machine's events
-- (cases::CaseEvent as JSON in details).
CREATE TABLE case_events (
    case_id   BIGINT NOT NULL REFERENCES cases (id),
    seq       BIGINT NOT NULL,
    at        TEXT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    details   TEXT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

-- Which match run's deaths the cases reflect: the match run's deaths are
-- turned into cases in a step of their own, and a step that finds this
-- behind death_events (a crash between the two) does it first.
CREATE TABLE case_sync (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    events_run  BIGINT NOT NULL
);
INSERT INTO case_sync (id, events_run) VALUES (1, 0);

-- Proposal ids are global (`vigil case approve PROPOSAL`): this table
-- gives them out and finds a proposal's case.
CREATE TABLE proposals (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id    BIGINT NOT NULL REFERENCES cases (id),
    created_at TEXT NOT NULL
);
CREATE INDEX proposals_case ON proposals (case_id);

-- Tips (举报). contact is private: shown only to supervisors.
CREATE TABLE tips (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    person_no  TEXT NOT NULL,
    note       TEXT NOT NULL,
    contact    TEXT,
    case_id    BIGINT NOT NULL REFERENCES cases (id),
    added_by   TEXT NOT NULL,
    added_at   TEXT NOT NULL
);

-- vigil's own payment decisions, apart from the roster's status column (a
-- roster import never undoes them): each change is one row, never edited.
-- change: suspend, terminate, resume, back_pay. period: the month (YYYY-MM,
-- Asia/Shanghai) whose payroll instructions carry it.
CREATE TABLE payment_changes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    person_no       TEXT NOT NULL,
    change          TEXT NOT NULL,
    effective_from  DATE NOT NULL,
    amount_fen      BIGINT,
    case_id         BIGINT NOT NULL REFERENCES cases (id),
    period          TEXT NOT NULL,
    at              TEXT NOT NULL
);
CREATE INDEX payment_changes_person ON payment_changes (person_no);
CREATE INDEX payment_changes_period ON payment_changes (period);

-- The payment ledger (spec §7), read back monthly.
CREATE TABLE payments (
    person_no     TEXT NOT NULL,
    period        TEXT NOT NULL,
    amount_fen    BIGINT NOT NULL,
    bank_account  TEXT NOT NULL,
    paid_on       DATE NOT NULL,
    run_id        BIGINT NOT NULL REFERENCES runs (id),
    PRIMARY KEY (person_no, period, paid_on, amount_fen)
);
CREATE INDEX payments_period ON payments (period);

-- What was paid after a confirmed death: computed when the death is
-- confirmed (from the ledger, estimated for months it does not cover).
-- status: to_recover, recovered, written_off.
CREATE TABLE overpayments (
    case_id         BIGINT PRIMARY KEY REFERENCES cases (id),
    person_no       TEXT NOT NULL,
    death_date      DATE NOT NULL,
    amount_fen      BIGINT NOT NULL,
    ledger_fen      BIGINT NOT NULL,
    estimated_fen   BIGINT NOT NULL,
    months          TEXT NOT NULL,
    status          TEXT NOT NULL,
    computed_at     TEXT NOT NULL
);

CREATE TABLE recoveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id     BIGINT NOT NULL REFERENCES overpayments (case_id),
    amount_fen  BIGINT NOT NULL,
    recovered_on DATE NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);

-- The matcher now compares every pensioner whose benefit is not terminated
-- (suspended ones too, not only active ones): every death record is
-- pending again, so the next `vigil match` looks at each once more.
DELETE FROM match_progress;
