//! vigil: finds pensioners who have died, stops what is paid in their name
//! only after people have checked, and makes the living prove they are alive
//! on time.
//!
//! The crate follows the flow of `DESIGN.md`, in layers; a module may use
//! the layers below it and never one above:
//!
//! 1. Bottom, pure, no I/O:
//!    - [`model`]: the domain types every stage shares (pensioner, death
//!      record, ID status, evidence of life, video session, non-death
//!      cancellation, match band); uses only `identity`.
//!    - [`identity`]: ID numbers, names and region codes; uses nothing.
//!    - [`files`]: a file beside the database written whole or not at all;
//!      uses nothing.
//! 2. [`store`]: the database (SQLite or PostgreSQL), migrations, one file
//!    per table group. Uses `model`, `identity`, `files` and nothing above:
//!    it never imports `matching` or `ingest`.
//! 3. [`audit`]: the append-only, hash-chained log of everything that
//!    changes; [`lifecycle`]: the one way a run is locked, started,
//!    finished and audited. Both use the store.
//! 4. The stages:
//!    - [`ingest`]: getting data in: the roster import, the evidence and
//!      video imports, the payment ledger import, and the connectors (public security, civil affairs,
//!      funeral homes), with a simulated source server for tests and the
//!      demo.
//!    - [`matching`]: blocking indexes, field comparisons, Fellegi-Sunter
//!      scoring with safeguards, one-to-one assignment, explanations,
//!      training and fusion of one death seen by several sources. Its core
//!      (`blocking`, `compare`, `score`, `assign`, `explain`, `fuse`,
//!      `train`, `eval`, `rules`) is pure and never imports the store; its
//!      edges (`run`, `propose`, `index_file`, `rules_file`, `export`,
//!      `view`) load from the store and files, keep the results, and show
//!      them (the export, the evaluation, the explain view).
//!    - [`cases`]: the suspension queue. Its core is pure and never
//!      imports the store: `machine` (the case state machine with
//!      two-person approval), `rules` (the reason codes and approval rules
//!      of `rules/cases.toml`), `open` (which cases a match run's deaths
//!      open or update) and `money` (overpayment and back pay, month by
//!      month). Its edges keep them: `queue` (cases from match runs and
//!      tips, the steps people take, and what an approval carries out on
//!      vigil's own payment state), `payroll` (the monthly instructions and
//!      whether the payroll applied them) and `users` (accounts, argon2,
//!      roles, audited). `vigil match` runs `queue::sync_death_cases` after
//!      the match: the matching stage never calls the queue.
//!
//!    Stages use the layers below them, not each other.
//! 5. [`generate`]: deterministic synthetic data in every source's real
//!    format, for tests, benchmarks and the demo; [`config`]: layered
//!    settings.
//! 6. [`demo`]: the whole pipeline on generated data, step by step, for
//!    `vigil demo`; it sits on top, beside the command line.
//!
//! The command line (`main.rs` and its `cli/` modules) sits on top and
//! calls library functions, never SQL. Nothing in the library prints or
//! exits; the command line is the only edge that does.

pub mod audit;
pub mod cases;
pub mod config;
pub mod demo;
pub mod files;
pub mod generate;
pub mod identity;
pub mod ingest;
pub mod lifecycle;
pub mod matching;
pub mod model;
pub mod store;
