//! Test databases and test data.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use vigil::identity::id::check_char;
use vigil::store::Store;

/// Runs the same block on whichever pool a test's store holds, for the SQL
/// a test runs behind vigil's back (the library keeps its own macro to
/// itself).
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            vigil::store::Store::Sqlite($pool) => $body,
            vigil::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// A fresh database for one test, and a directory for its files.
pub struct TestDb {
    pub store: Store,
    /// The database's URL, for running the real binary against it.
    pub url: String,
    pub dir: tempfile::TempDir,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.pg
            && let Ok(admin) = Store::connect(&admin_url, 1).await
            && let Store::Postgres(pool) = &admin
        {
            let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await;
            admin.close().await;
        }
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("vigil.db").display());
    let store = Store::open(&url, 4).await.expect("open sqlite");
    TestDb {
        store,
        url,
        dir,
        pg: None,
    }
}

pub const PG_ENV: &str = "VIGIL_TEST_DATABASE_URL";

/// A new PostgreSQL database named after the test, or `None` when
/// `VIGIL_TEST_DATABASE_URL` is not set.
pub async fn postgres() -> Option<TestDb> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = std::env::var(PG_ENV).ok()?;
    let name = format!(
        "vigil_t_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    );
    let admin = Store::connect(&admin_url, 1)
        .await
        .expect("connect to VIGIL_TEST_DATABASE_URL");
    if let Store::Postgres(pool) = &admin {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(pool)
            .await
            .expect("create test database");
    } else {
        panic!("{PG_ENV} must be a postgres:// URL");
    }
    admin.close().await;
    let url = with_database(&admin_url, &name);
    let store = Store::open(&url, 4)
        .await
        .expect("open postgres test database");
    Some(TestDb {
        store,
        url,
        dir: tempfile::tempdir().expect("tempdir"),
        pg: Some((admin_url, name)),
    })
}

/// The same server URL with another database name.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| i + scheme_end)
        .unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Declares a test that runs on both backends, as `NAME::sqlite` and
/// `NAME::postgres`. The body is an async fn taking `&TestDb`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::support::sqlite().await;
                super::$body(&db).await;
                db.cleanup().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(vigil_pg),
                ignore = "skipped: VIGIL_TEST_DATABASE_URL is not set (PostgreSQL half)"
            )]
            async fn postgres() {
                let Some(db) = $crate::support::postgres().await else {
                    eprintln!(
                        "skipped: {} is not set, so the PostgreSQL half of {} did not run",
                        $crate::support::PG_ENV,
                        stringify!($name)
                    );
                    return;
                };
                super::$body(&db).await;
                db.cleanup().await;
            }
        }
    };
}

/// A valid 18-digit ID number for a region, birth date and sequence.
pub fn valid_id(region: &str, birth: &str, seq: u32) -> String {
    let first17 = format!("{region}{birth}{seq:03}");
    let c = check_char(first17.as_bytes()) as char;
    format!("{first17}{c}")
}

/// One roster row, valid unless changed by the test.
#[derive(Debug, Clone)]
pub struct Row {
    pub person_no: String,
    pub name: String,
    pub id_number: String,
    pub sex: String,
    pub birth_date: String,
    pub insured_region: String,
    pub residence_region: String,
    pub benefit_type: String,
    pub monthly_amount: String,
    pub bank_account: String,
    pub benefit_start: String,
    pub status: String,
    pub last_certified: String,
    pub phone: String,
}

pub const HEADER: &str = "person_no,name,id_number,sex,birth_date,insured_region,residence_region,\
benefit_type,monthly_amount,bank_account,benefit_start,status,last_certified,phone";

/// Person `n`: alternating sex, birth dates in the 1940s.
pub fn person(n: u32) -> Row {
    let female = n.is_multiple_of(2);
    let seq = 100 + n * 2 + if female { 0 } else { 1 };
    let birth = format!("194{}0{}1{}", n % 10, 1 + n % 9, n % 10);
    let names = [
        "王秀英",
        "李建国",
        "张桂英",
        "刘德华",
        "陈淑珍",
        "杨国强",
        "赵玉兰",
        "黄建华",
    ];
    Row {
        person_no: format!("44030000{:08}", n),
        name: names[n as usize % names.len()].to_string(),
        id_number: valid_id("440304", &birth, seq % 1000),
        sex: if female { "2" } else { "1" }.to_string(),
        birth_date: format!("{}-{}-{}", &birth[..4], &birth[4..6], &birth[6..]),
        insured_region: "440304".to_string(),
        residence_region: "440304".to_string(),
        benefit_type: "employee_basic".to_string(),
        monthly_amount: "3268.50".to_string(),
        bank_account: format!("62220212{:011}", n),
        benefit_start: "2002-04-01".to_string(),
        status: "active".to_string(),
        last_certified: "2026-02-11".to_string(),
        phone: "13800138000".to_string(),
    }
}

impl Row {
    pub fn line(&self) -> String {
        [
            &self.person_no,
            &self.name,
            &self.id_number,
            &self.sex,
            &self.birth_date,
            &self.insured_region,
            &self.residence_region,
            &self.benefit_type,
            &self.monthly_amount,
            &self.bank_account,
            &self.benefit_start,
            &self.status,
            &self.last_certified,
            &self.phone,
        ]
        .iter()
        .map(|f| {
            if f.contains(',') || f.contains('"') {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
    }
}

pub fn roster_text(rows: &[Row]) -> String {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&r.line());
        s.push('\n');
    }
    s
}

pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> PathBuf {
    std::fs::write(path, bytes).expect("write test file");
    path.to_path_buf()
}

/// Asserts that run `id` was marked abandoned by a later run of its kind:
/// finished, with the message that says its process stopped.
/// A run of `kind` and `source` as a killed process leaves it: started,
/// never finished. Returns its id.
pub async fn dead_run(store: &Store, kind: &str, source: &str) -> i64 {
    store.start_run(kind, source, None, None).await.unwrap()
}

pub async fn assert_abandoned(store: &Store, id: i64) {
    let run = store.get_run(id).await.unwrap().unwrap();
    assert_eq!(run.status, "abandoned", "{run:?}");
    assert!(run.finished_at.is_some(), "{run:?}");
    assert!(
        run.message
            .as_deref()
            .unwrap_or_default()
            .contains("stopped"),
        "{run:?}"
    );
}

/// Stores a copy of pensioner `person_no`'s row under `new_no`, behind
/// vigil's back (the same number twice when they are equal).
pub async fn insert_copy_as(
    store: &Store,
    person_no: &str,
    new_no: &str,
) -> Result<(), sqlx::Error> {
    const SQL: &str = "INSERT INTO pensioners (person_no, name, name_norm, name_key, id_number, \
        sex, birth_date, insured_region, residence_region, benefit_type, monthly_amount_fen, \
        bank_account, benefit_start, status, content_hash, first_seen) \
        SELECT $2, name, name_norm, name_key, id_number, sex, birth_date, insured_region, \
        residence_region, benefit_type, monthly_amount_fen, bank_account, benefit_start, status, \
        content_hash, first_seen FROM pensioners WHERE person_no = $1";
    crate::support::with_pool!(store, pool => {
        sqlx::query(SQL).bind(person_no).bind(new_no).execute(pool).await.map(|_| ())
    })
}
