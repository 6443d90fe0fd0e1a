//! One integration test binary (fast links on 2 cores). Every test that
//! touches storage runs twice, on a fresh SQLite file and on a fresh
//! PostgreSQL database; the PostgreSQL half says it was skipped when
//! `VIGIL_TEST_DATABASE_URL` is not set.

mod support;

mod audit;
mod cases;
mod cli;
mod connectors;
mod evidence;
mod lifecycle;
mod matching;
mod payments;
mod roster;
mod roster_snapshot;
mod users;
