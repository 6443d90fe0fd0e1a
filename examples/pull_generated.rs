//! Loads the death records of a `vigil generate` directory into a database
//! through the real connectors, as `vigil demo` does: public security and
//! funeral homes are served by the simulated source server on a loopback
//! port, civil affairs is read from the GBK files. The match benchmark
//! (`benches/match_10m.sh`) uses it to fill a database with a million death
//! records without a real source behind them.
//!
//!     cargo run --release --example pull_generated -- DATABASE_URL DATA_DIR

use std::path::PathBuf;
use std::time::Instant;

use vigil::ingest::connectors::{load_definitions, sim};
use vigil::store::Store;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(data)) = (args.next(), args.next()) else {
        eprintln!("usage: pull_generated DATABASE_URL DATA_DIR");
        std::process::exit(2);
    };
    let data = PathBuf::from(data);
    let defs_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("connectors");
    let defs = load_definitions(&defs_dir).unwrap_or_else(|problems| {
        for p in problems {
            eprintln!("{p}");
        }
        std::process::exit(1);
    });
    let store = Store::open(&url, 4).await.expect("open the database");
    let started = Instant::now();
    let summaries = sim::pull_through_sim(&store, &defs, &[], &data, &|_| {})
        .await
        .expect("pull");
    let secs = started.elapsed().as_secs_f64();
    let mut stored = 0;
    for s in &summaries {
        let c = &s.counts;
        stored += c.inserted;
        eprintln!(
            "{:<16} read {:>8} stored {:>8} quarantined {:>6} {}",
            s.source,
            c.read,
            c.inserted,
            c.quarantined,
            s.error.as_deref().unwrap_or("ok")
        );
    }
    println!("pulled {stored} death records in {secs:.1} s");
    store.close().await;
}
