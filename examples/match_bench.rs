//! The matcher on a stored roster and stored death records, without
//! writing anything: loads both from the database, builds the blocking
//! indexes, matches, and prints the time of each step, the throughput and
//! the peak memory. For profiling (`perf record`) and for comparing one
//! change with another on the same data; `benches/match_10m.sh` measures
//! the whole `vigil match --full`.
//!
//!     cargo run --release --example match_bench -- sqlite://DB [RECORDS]
//!
//! RECORDS, when given, matches only the first that many records.

mod support;

use std::time::Instant;

use vigil::matching::rules::MatchRules;
use vigil::matching::{RosterIndex, match_batch};
use vigil::model::LifeEvidence;
use vigil::store::Store;

#[tokio::main]
async fn main() {
    // VIGIL_LOG=debug shows the matcher's own phases.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let Some(url) = args.next() else {
        eprintln!("usage: match_bench DATABASE_URL [RECORDS]");
        std::process::exit(2);
    };
    let limit: Option<usize> = args.next().and_then(|s| s.parse().ok());
    let store = Store::open(&url, 2).await.expect("open the database");
    let t = Instant::now();
    let persons = store.load_match_persons().await.expect("load the roster");
    let load_persons = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut records = store.load_match_records().await.expect("load the records");
    let load_records = t.elapsed().as_secs_f64();
    if let Some(n) = limit {
        records.truncate(n);
    }
    let rules = MatchRules::default_rules();
    // As `vigil match` does: age-only birth years widened by the rules' slack.
    vigil::model::widen_age_ranges(&mut records, rules.blocking.age_slack_years);
    let t = Instant::now();
    let index = RosterIndex::build_for(&persons, &rules);
    let built = t.elapsed().as_secs_f64();
    if std::env::var_os("MATCH_BENCH_BLOCKS").is_some() {
        // Candidates per kind of record, to see where the pairs come from.
        let mut by: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
        for r in &records {
            let c = index.candidates(r);
            let kind = format!(
                "{} {:?} birth={} years={}",
                r.source,
                r.id_status,
                r.birth_date.is_some(),
                r.birth_year_range.is_some()
            );
            let e = by.entry(kind).or_default();
            e.0 += 1;
            e.1 += c.person_indices.len();
            e.2 += c.capped_blocks.len();
        }
        for (k, (n, cands, capped)) in by {
            println!(
                "{k:<55} {n:>8} records {cands:>10} candidates ({:.1}/record) {capped:>7} capped",
                cands as f64 / n as f64
            );
        }
    }
    let t = Instant::now();
    let cpu = support::cpu_seconds();
    let batch = match_batch(
        &index,
        &records,
        &rules,
        &LifeEvidence::new(),
        &Default::default(),
    );
    let matched = t.elapsed().as_secs_f64();
    let matched_cpu = support::cpu_seconds() - cpu;
    let auto = batch
        .matches
        .iter()
        .filter(|m| m.band == vigil::model::Band::Auto)
        .count();
    println!(
        "{} persons loaded in {load_persons:.1} s, {} records in {load_records:.1} s\n\
         index built in {built:.2} s ({} MiB of indexes)\n\
         matched in {matched:.2} s ({matched_cpu:.1} CPU s) = {:.0} records/s ({} pairs scored, {} capped blocks)\n\
         {} matches ({auto} auto); peak RSS {:.0} MiB",
        persons.len(),
        records.len(),
        index.approx_bytes() >> 20,
        records.len() as f64 / matched,
        batch.pairs_scored,
        batch.capped_blocks.len(),
        batch.matches.len(),
        support::peak_rss_mib()
    );
    store.close().await;
}
