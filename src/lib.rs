//! vigil: finds pensioners who have died, stops what is paid in their name
//! only after people have checked, and makes the living prove they are alive
//! on time.
//!
//! The crate follows the flow of `DESIGN.md`:
//!
//! - [`identity`]: ID numbers, names and region codes; pure functions.
//! - [`store`]: the database (SQLite or PostgreSQL), migrations, one file
//!   per table group.
//! - [`ingest`]: getting data in: the roster import and the connectors
//!   (public security, civil affairs, funeral homes), with a simulated
//!   source server for tests and the demo.
//! - [`matching`]: blocking indexes, field comparisons, Fellegi-Sunter
//!   scoring with safeguards, one-to-one assignment, explanations, training
//!   and fusion of one death seen by several sources; a pure core, with
//!   the store and files read only at its edges (the match run, training,
//!   the export and evaluation, the explain view).
//! - [`audit`]: the append-only, hash-chained log of everything that changes.
//! - [`generate`]: deterministic synthetic data in every source's real
//!   format, for tests, benchmarks and the demo.
//! - [`config`]: layered settings.
//! - [`demo`]: the whole pipeline on generated data, step by step, for
//!   `vigil demo`; it sits on top, beside the command line.
//!
//! Nothing here prints or exits; `main.rs` and its `cli/` modules are the
//! only edge that does.

pub mod audit;
pub mod config;
pub mod demo;
pub mod generate;
pub mod identity;
pub mod ingest;
pub mod matching;
pub mod store;
