//! Connector throughput: writes N synthetic public-security records (one
//! JSON Lines file, served by the simulated source server in pages of 500)
//! and N civil-affairs rows (GBK CSV files of 10,000 rows), pulls each into
//! a fresh SQLite database (or `VIGIL_BENCH_DATABASE_URL`) through the real
//! connectors, and prints records per second and peak memory.
//!
//!     cargo run --release --example connectors_bench -- 1000000
//!
//! A second argument (`public_security` or `civil_affairs`) pulls only that
//! source (and writes only its data), to profile one path at a time. A
//! PostgreSQL database named by `VIGIL_BENCH_DATABASE_URL` has its death
//! data tables emptied (`TRUNCATE … CASCADE`) before each pull: use a
//! database of its own.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use vigil::identity::id::check_char;
use vigil::ingest::connectors::{load_definitions, sim};
use vigil::store::Store;

/// The allocator the `vigil` binary uses, so the numbers are the binary's.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NAMES: [&str; 8] = [
    "王秀英",
    "李建国",
    "张桂英",
    "刘德华",
    "陈淑珍",
    "杨国强",
    "赵玉兰",
    "黄建华",
];

fn id(n: u64, birth: &str) -> String {
    let first17 = format!("440304{birth}{:03}", n % 1000);
    format!("{first17}{}", check_char(first17.as_bytes()) as char)
}

fn write_data(dir: &Path, n: u64, only: Option<&str>) {
    if only != Some("civil_affairs") {
        write_public_security(dir, n);
    }
    if only != Some("public_security") {
        write_civil_affairs(dir, n);
    }
}

fn write_public_security(dir: &Path, n: u64) {
    let ps = dir.join("public_security");
    std::fs::create_dir_all(&ps).unwrap();
    let mut text = String::with_capacity(n as usize * 220);
    for i in 0..n {
        let birth = format!("19{:02}{:02}{:02}", 30 + i % 30, 1 + i % 12, 1 + i % 28);
        let zxrq = format!("2026-{:02}-{:02}", 1 + (i * 11 / n.max(1)), 1 + i % 28);
        let reason = if i % 20 == 0 { "迁出" } else { "死亡" };
        writeln!(
            text,
            "{{\"record_id\":\"PS-2026-{i:08}\",\"xm\":\"{}\",\"gmsfhm\":\"{}\",\"xb\":\"{}\",\"csrq\":\"{birth}\",\"swrq\":\"20261001\",\"zxrq\":\"{zxrq}\",\"zxyy\":\"{reason}\",\"hjdz_xzqh\":\"440304\"}}",
            NAMES[(i % 8) as usize],
            id(i, &birth),
            1 + i % 2
        )
        .unwrap();
    }
    std::fs::write(ps.join("records.jsonl"), text).unwrap();
}

/// Only when asked for: the simulated server loads (and parses) every
/// public-security record it finds when it starts, inside the timed pull.
fn write_civil_affairs(dir: &Path, n: u64) {
    let ca = dir.join("civil_affairs");
    std::fs::create_dir_all(&ca).unwrap();
    let per_file = 10_000u64;
    for f in 0..n.div_ceil(per_file) {
        let mut text =
            String::from("姓名,身份证号,性别,出生日期,死亡日期,死亡地点,登记机关代码,登记编号\n");
        for i in f * per_file..((f + 1) * per_file).min(n) {
            let birth = format!("19{:02}{:02}{:02}", 30 + i % 30, 1 + i % 12, 1 + i % 28);
            writeln!(
                text,
                "{},{},{},{}/{}/{},2026-10-01,深圳市人民医院,{:09},{i:010}",
                NAMES[(i % 8) as usize],
                id(i, &birth),
                if i % 2 == 0 { "女" } else { "男" },
                &birth[..4],
                birth[4..6].trim_start_matches('0'),
                birth[6..].trim_start_matches('0'),
                440304000 + f
            )
            .unwrap();
        }
        let (bytes, _, _) = encoding_rs::GBK.encode(&text);
        std::fs::write(ca.join(format!("{:09}_20261001.csv", 440304000 + f)), bytes).unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let only = std::env::args().nth(2);
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    write_data(dir.path(), n, only.as_deref());
    println!("wrote {n} records per source in {:.1?}", t.elapsed());
    let defs = load_definitions(&Path::new(env!("CARGO_MANIFEST_DIR")).join("connectors"))
        .expect("definitions");
    for source in ["public_security", "civil_affairs"] {
        if only.as_deref().is_some_and(|o| o != source) {
            continue;
        }
        let url = std::env::var("VIGIL_BENCH_DATABASE_URL").unwrap_or_else(|_| {
            format!(
                "sqlite://{}",
                dir.path().join(format!("{source}.db")).display()
            )
        });
        let store = Store::open(&url, 4).await.unwrap();
        if let Store::Postgres(pool) = &store {
            // A shared database starts each pull empty, like the fresh
            // SQLite file; a second run would find every file taken. Then
            // statistics, as autovacuum may be off.
            for sql in [
                "TRUNCATE death_records, non_death_events, source_record_history, quarantine, \
                 connector_state, connector_files CASCADE",
                "ANALYZE",
            ] {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
        }
        let (t, cpu) = (Instant::now(), support::cpu_seconds());
        let s = sim::pull_through_sim(&store, &defs, &[source.to_string()], dir.path(), &|_| {})
            .await
            .unwrap()
            .remove(0);
        let secs = t.elapsed().as_secs_f64();
        let cpu = support::cpu_seconds() - cpu;
        println!(
            "{source}: {} records in {secs:.2} s = {:.0} records/s, {cpu:.1} CPU s ({} pages, {} files); ok={} peak RSS so far {:.0} MiB",
            s.counts.read,
            s.counts.read as f64 / secs,
            s.counts.pages,
            s.counts.files_taken,
            s.ok(),
            support::peak_rss_mib()
        );
        store.close().await;
    }
}
