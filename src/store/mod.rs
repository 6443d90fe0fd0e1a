//! The database: one [`Store`] over SQLite or PostgreSQL, chosen by the URL
//! scheme, with the migrations of each backend embedded in the binary.
//!
//! Every query is written once and run on whichever pool the store holds
//! (see `with_pool!`); only bulk loading differs (the C API on SQLite,
//! multi-row `INSERT` or `COPY` on PostgreSQL). This module never decides
//! anything about pensioners: it stores and fetches what the engine hands
//! it, as the plain types of [`crate::model`], and uses no layer above it.
//!
//! Why one enum over two pools with shared query bodies, rather than a
//! storage trait with one implementation per backend: almost every query
//! is the same SQL text on both (`$1` binds, `ON CONFLICT`, `RETURNING`
//! all mean the same), so a trait would hold two copies of each body that
//! must never drift apart, and the contract tests would be the only thing
//! keeping them equal. Matching on the enum compiles the one body once per
//! backend, with the concrete pool type, so sqlx's types stay static and
//! nothing is boxed. Where the backends really differ (bulk paths, locks,
//! the few statements SQLite spells differently) the code branches on
//! [`Store::backend`] in plain sight.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, SqlSafeStr};

use crate::config::mask_url_password;
pub use runs::{run_kind, run_source};
pub(crate) use sqlite_c::date_text;

pub mod cases;
pub mod deaths;
mod deaths_bulk;
pub mod evidence;
pub mod match_state;
pub mod matches;
mod matches_bulk;
pub mod payments;
pub mod pensioners;
mod pensioners_bulk;
pub mod quarantine;
pub mod roster_snapshot;
mod rows;
pub mod runs;
mod sqlite_c;
pub mod users;

/// Runs the same block on whichever pool the store holds. The block is
/// compiled once per backend, so the same SQL text and binds serve both.
macro_rules! with_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

/// How SQLite begins a transaction that will write (see [`BeginWrite`]).
const SQLITE_BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// A transaction that will write, begun the same way on both backends'
/// pools (so it reads the same inside either arm of [`with_pool!`]).
///
/// On SQLite it begins `IMMEDIATE`: the write lock is taken as it begins,
/// so a writer that meets another waits for it (busy timeout). A deferred
/// transaction that reads first and then writes fails at once instead
/// (SQLITE_BUSY, whatever the timeout) when another writer committed in
/// between. PostgreSQL locks rows as it goes and needs nothing more.
pub trait BeginWrite {
    type Db: sqlx::Database;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, Self::Db>>> + Send;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Sqlite>>> + Send
    {
        self.begin_with(SQLITE_BEGIN_WRITE)
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    fn begin_write(
        &self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'static, sqlx::Postgres>>> + Send
    {
        self.begin()
    }
}

/// [`BeginWrite`] on a connection rather than a pool (the pull's writer
/// holds one for its whole run; the match commit needs one it can set
/// pragmas on): the same `IMMEDIATE` on SQLite.
pub trait BeginWriteOn {
    type Db: sqlx::Database;
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'_, Self::Db>>> + Send;
}

impl BeginWriteOn for sqlx::SqliteConnection {
    type Db = sqlx::Sqlite;
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'_, sqlx::Sqlite>>> + Send
    {
        sqlx::Connection::begin_with(self, SQLITE_BEGIN_WRITE)
    }
}

impl BeginWriteOn for sqlx::PgConnection {
    type Db = sqlx::Postgres;
    fn begin_write(
        &mut self,
    ) -> impl std::future::Future<Output = sqlx::Result<sqlx::Transaction<'_, sqlx::Postgres>>> + Send
    {
        sqlx::Connection::begin(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL {0}: use sqlite://FILE or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("cannot open database {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Bulk(#[from] sqlite_c::BulkError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the run stopped before its commit, which wrote nothing: {0}")]
    Interrupted(String),
    #[error(
        "another roster import is running on this database ({0}); wait for it to finish and run this one again"
    )]
    ImportRunning(String),
    #[error(
        "another match run is running on this database ({0}); wait for it to finish and run \
         this one again"
    )]
    MatchRunning(String),
    #[error(
        "another pull of {source_name} is running on this database ({detail}); wait for it to \
         finish (or stop it) and pull {source_name} again"
    )]
    PullRunning { source_name: String, detail: String },
    #[error(
        "another import of {source_name} is running on this database ({detail}); wait for it \
         to finish and import this file again"
    )]
    EvidenceImportRunning { source_name: String, detail: String },
    #[error(
        "another import of the payment ledger is running on this database ({0}); wait for it \
         to finish and import this file again"
    )]
    PaymentsImportRunning(String),
    #[error("cannot take the lock {path}: {source}")]
    LockFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A connection pool on one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Store {
    /// Opens the database named by `url` (a SQLite file is created if
    /// missing) and applies any pending migrations.
    pub async fn open(url: &str, max_connections: u32) -> Result<Store> {
        let store = Self::connect(url, max_connections).await?;
        store.migrate().await?;
        store.ensure_indexes().await?;
        Ok(store)
    }

    /// Opens without migrating; `vigil db migrate` and tests use this.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store> {
        let connect_err = |source| StoreError::Connect {
            url: mask_url_password(url),
            source,
        };
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(connect_err)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL with NORMAL survives a process crash; only a power cut
                // may lose the last commits, which a re-run restores.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // Larger pages: fewer B-tree levels and splits for ~250-byte
                // pensioner rows. Only takes effect when the file is created.
                .page_size(16384)
                // 64 MiB of page cache per connection (SQLITE_CACHE says
                // why; ensure_indexes restores this after an index build).
                .pragma("cache_size", "-65536")
                // Index builds (the end of a first import) sort with a
                // helper thread: the machine this runs on has two cores.
                .pragma("threads", "2")
                .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(max_connections.max(1))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Ok(Store::Sqlite(pool))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)
                .map_err(connect_err)?
                .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(5));
            let pool = PgPoolOptions::new()
                .max_connections(max_connections.max(1))
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await
                .map_err(connect_err)?;
            Ok(Store::Postgres(pool))
        } else {
            Err(StoreError::UnsupportedUrl(mask_url_password(url)))
        }
    }

    /// The most connections the pool opens at once.
    pub fn max_connections(&self) -> u32 {
        with_pool!(self, pool => pool.options().get_max_connections())
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the embedded migrations of this backend that are not applied
    /// yet; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let migrator = migrator(self.backend());
        let before = self.applied_migrations().await.unwrap_or(0);
        with_pool!(self, pool => migrator.run(pool).await)?;
        let after = self.applied_migrations().await?;
        Ok(after.saturating_sub(before))
    }

    async fn applied_migrations(&self) -> Result<usize> {
        let n: i64 = with_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
                .fetch_one(pool)
                .await
        })?;
        Ok(n as usize)
    }

    /// Creates the roster's indexes if they are missing (a first load into an
    /// empty table drops them and rebuilds them at its end; a crash in
    /// between leaves them to this, which every start runs).
    ///
    /// The person-number index is UNIQUE: if it cannot be rebuilt because
    /// the table holds the same person twice, this fails and vigil refuses
    /// to start rather than run on a roster without its key.
    pub async fn ensure_indexes(&self) -> Result<()> {
        let present = self.roster_index_names().await?;
        let missing: Vec<&IndexDef> = ROSTER_INDEXES
            .iter()
            .filter(|def| !present.iter().any(|p| p == def.name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        match self {
            Store::Sqlite(pool) => {
                // One index at a time (SQLite has one writer), on one
                // connection whose page cache is cut for the build: the
                // sorter then sorts runs that fit the CPU caches and merges
                // them with PRAGMA threads' helper (about half the CPU of
                // one sort in a 64 MiB cache, at 1M and 10M rows alike).
                let mut conn = pool.acquire().await?;
                sqlx::query(SQLITE_INDEX_BUILD_CACHE)
                    .execute(&mut *conn)
                    .await?;
                let mut result = Ok(());
                for def in &missing {
                    result = sqlx::query(def.create)
                        .execute(&mut *conn)
                        .await
                        .map(|_| ())
                        .map_err(|e| def.error(e));
                    if result.is_err() {
                        break;
                    }
                }
                let restored = sqlx::query(SQLITE_CACHE).execute(&mut *conn).await;
                result?;
                restored?;
            }
            Store::Postgres(pool) => {
                // Both at once, each on a connection of its own (outside the
                // pool, whose acquire timeout a 10M-row build would exceed):
                // PostgreSQL builds two indexes of one table concurrently,
                // one per core.
                let options = pool.connect_options();
                futures::future::try_join_all(missing.iter().map(|def| {
                    let options = options.clone();
                    async move {
                        let mut conn = options.connect().await?;
                        sqlx::query(PG_INDEX_BUILD_MEMORY)
                            .execute(&mut conn)
                            .await?;
                        let built = sqlx::query(def.create)
                            .execute(&mut conn)
                            .await
                            .map(|_| ())
                            .map_err(|e| def.error(e));
                        let _ = sqlx::Connection::close(conn).await;
                        built
                    }
                }))
                .await?;
            }
        }
        Ok(())
    }

    /// The names of the indexes the pensioners table has now.
    async fn roster_index_names(&self) -> Result<Vec<String>> {
        let names = match self {
            Store::Sqlite(pool) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pensioners'",
            )
            .fetch_all(pool)
            .await?,
            Store::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT indexname::text FROM pg_indexes \
                     WHERE tablename = 'pensioners' AND schemaname = current_schema()",
                )
                .fetch_all(pool)
                .await?
            }
        };
        Ok(names)
    }

    /// Drops the roster's indexes, the unique one on `person_no` included,
    /// before a bulk load into an empty table. Only a roster import holding
    /// [`LockKey::RosterImport`] (see [`Store::lock`]) may call this: without the unique
    /// index, nothing but that lock keeps a second import from storing the
    /// same person again.
    pub async fn drop_roster_indexes(&self) -> Result<()> {
        for sql in DROP_ROSTER_INDEXES {
            with_pool!(self, pool => sqlx::query(*sql).execute(pool).await.map(|_| ()))?;
        }
        Ok(())
    }

    /// Gives the planner statistics after a bulk load. Autovacuum may be off
    /// on a PostgreSQL server (it is on ours), and without statistics the
    /// planner guesses a fresh table is tiny. SQLite plans well without them.
    pub async fn analyze_pensioners(&self) -> Result<()> {
        if let Store::Postgres(pool) = self {
            sqlx::query("ANALYZE pensioners").execute(pool).await?;
        }
        Ok(())
    }

    /// Takes the lock `key`, or fails at once with the error of
    /// [`LockKey::busy`] if another process (or task) holds it: two holders
    /// of one key never run at once, and the second is told so rather than
    /// left waiting.
    ///
    /// The lock dies with its holder: on PostgreSQL it is a session advisory
    /// lock on a connection of its own, on SQLite an OS lock on a file next
    /// to the database (`FILE-roster.lock`, `FILE-match.lock`,
    /// `FILE-pull-SOURCE.lock`, `FILE-import-SOURCE.lock`). An
    /// in-memory SQLite database is private to its process and needs none.
    pub async fn lock(&self, key: LockKey<'_>) -> Result<StoreLock> {
        match self {
            Store::Postgres(pool) => {
                let id = key.advisory_id();
                let mut conn = pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(id)
                    .fetch_one(&mut conn)
                    .await?;
                if !got {
                    let _ = sqlx::Connection::close(conn).await;
                    return Err(key.busy("a PostgreSQL advisory lock is held".to_string()));
                }
                Ok(StoreLock::held(key, LockInner::Postgres(conn, id)))
            }
            Store::Sqlite(pool) => {
                let file: String =
                    sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                        .fetch_one(pool)
                        .await?;
                if file.is_empty() {
                    return Ok(StoreLock::held(key, LockInner::None));
                }
                let path = format!("{file}-{}.lock", key.file_suffix());
                let io = |source| StoreError::LockFile {
                    path: path.clone(),
                    source,
                };
                let lock = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(io)?;
                match lock.try_lock() {
                    Ok(()) => Ok(StoreLock::held(key, LockInner::File { _held: lock })),
                    Err(std::fs::TryLockError::WouldBlock) => {
                        Err(key.busy(format!("{path} is locked")))
                    }
                    Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
                }
            }
        }
    }

    /// [`Store::lock`], which then marks the runs the key names
    /// ([`LockKey::run`]) still `running` as abandoned: with the lock held,
    /// none of them is alive (see `abandon_dead_runs`). Every lock holder
    /// that records a run takes its lock through this, so none can forget
    /// the second step, and starts the run with
    /// [`Store::start_locked_run`], so none can record a run under another
    /// run's lock.
    pub async fn lock_run(&self, key: LockKey<'_>) -> Result<StoreLock> {
        let lock = self.lock(key).await?;
        match self.abandon_dead_runs(&lock).await {
            Ok(_) => Ok(lock),
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }
}

/// An index of the pensioners table that a bulk load drops and rebuilds.
struct IndexDef {
    name: &'static str,
    /// `CREATE ... IF NOT EXISTS`; the same text serves both backends.
    create: &'static str,
    /// A constraint, not just a lookup aid: failing to build it means the
    /// stored data breaks the rule.
    unique: bool,
}

impl IndexDef {
    fn error(&self, e: sqlx::Error) -> StoreError {
        if self.unique {
            StoreError::Corrupt(format!(
                "the unique index {} cannot be built ({e}); the same person_no is stored \
                 more than once (SELECT person_no FROM pensioners GROUP BY person_no \
                 HAVING COUNT(*) > 1 lists them)",
                self.name
            ))
        } else {
            StoreError::Sql(e)
        }
    }
}

/// The roster's key (UNIQUE) and its lookup index on the ID number. A bulk
/// load into an empty table drops both and builds them once at the end,
/// under the roster-import lock.
const ROSTER_INDEXES: [IndexDef; 2] = [
    IndexDef {
        name: "pensioners_person_no",
        create: "CREATE UNIQUE INDEX IF NOT EXISTS pensioners_person_no ON pensioners (person_no)",
        unique: true,
    },
    IndexDef {
        name: "pensioners_id_number",
        create: "CREATE INDEX IF NOT EXISTS pensioners_id_number ON pensioners (id_number)",
        unique: false,
    },
];
const DROP_ROSTER_INDEXES: &[&str] = &[
    "DROP INDEX IF EXISTS pensioners_person_no",
    "DROP INDEX IF EXISTS pensioners_id_number",
];
/// SQLite's page cache per connection, in KiB (negative: KiB, not pages):
/// 64 MiB serves the append-mostly bulk path, and memory stays flat at 10M
/// rows because index builds spill to temporary files, not RAM.
const SQLITE_CACHE: &str = "PRAGMA cache_size = -65536";
/// While an index is built: 2 MiB, so the sorter's runs are its minimum
/// (250 pages) and each sorts within the CPU caches.
const SQLITE_INDEX_BUILD_CACHE: &str = "PRAGMA cache_size = -2048";
/// Sort memory for one index build on PostgreSQL (the server default, 64
/// MiB, sends a 1M-row build to disk).
const PG_INDEX_BUILD_MEMORY: &str = "SET maintenance_work_mem = '256MB'";
/// What a [`Store::lock`] keeps to one holder at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKey<'a> {
    /// The database-wide roster import: a first import drops the unique
    /// index on `person_no` while it loads, so two first imports at once
    /// could each store the same person.
    RosterImport,
    /// A pull of one source (by its name): two at once would each classify
    /// a batch against what the other has not committed yet, and store a
    /// re-delivered record twice or count it wrongly, and move the same
    /// watermarks.
    Pull(&'a str),
    /// A match run: two at once would each replace the other's matches and
    /// death events, and neither could tell a run that died from one that
    /// is still working.
    Match,
    /// An import of evidence of life or of video results (by its source
    /// name): two of one kind at once would both append the same file's
    /// events, and neither could tell an import that died from one that is
    /// still working.
    EvidenceImport(runs::EvidenceKind),
    /// An import of the payment ledger: two at once would both look up
    /// the same rows as new, and neither could tell an import that died
    /// from one that is still working.
    PaymentsImport,
}

impl<'a> LockKey<'a> {
    /// The run this lock keeps to one at a time, as `vigil runs` lists it:
    /// (kind, source).
    pub fn run(self) -> (&'static str, &'a str) {
        match self {
            LockKey::RosterImport => (run_kind::ROSTER_IMPORT, runs::run_source::ROSTER),
            LockKey::Pull(source) => (run_kind::PULL, source),
            LockKey::Match => (run_kind::MATCH, runs::run_source::MATCHER),
            LockKey::EvidenceImport(kind) => kind.run(),
            LockKey::PaymentsImport => {
                (run_kind::PAYMENTS_IMPORT, runs::run_source::PAYMENT_LEDGER)
            }
        }
    }

    /// `pg_try_advisory_lock` key. The roster import's is "vigilros" in
    /// ASCII, as it always was, and the match run's "vigilmat" (both with
    /// bit 62 set); a pull's and an evidence import's are the start of a
    /// SHA-256 of "vigil pull SOURCE" or "vigil import SOURCE" with bits 63
    /// and 62 cleared, so a fixed key and a hashed one never meet.
    fn advisory_id(self) -> i64 {
        match self {
            LockKey::RosterImport => 0x7669_6769_6c72_6f73,
            // "vigilmat".
            LockKey::Match => 0x7669_6769_6c6d_6174,
            LockKey::Pull(source) => hashed_key(&format!("vigil pull {source}")),
            LockKey::EvidenceImport(kind) => hashed_key(&format!("vigil import {}", kind.run().1)),
            LockKey::PaymentsImport => hashed_key(&format!(
                "vigil import {}",
                runs::run_source::PAYMENT_LEDGER
            )),
        }
    }

    /// The end of the lock file's name beside a SQLite database. A source
    /// name that is not plain ASCII letters, digits, `_` and `-` is written
    /// in hex, so it can never reach another directory, after a `.` that no
    /// plain name holds, so it can never be a plain name's file either.
    fn file_suffix(self) -> String {
        match self {
            LockKey::RosterImport => "roster".to_string(),
            LockKey::Match => "match".to_string(),
            LockKey::EvidenceImport(kind) => format!("import-{}", kind.run().1),
            LockKey::PaymentsImport => format!("import-{}", runs::run_source::PAYMENT_LEDGER),
            LockKey::Pull(source) => {
                let plain = !source.is_empty()
                    && source
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    format!("pull-{source}")
                } else {
                    format!("pull.{}", hex::encode(source.as_bytes()))
                }
            }
        }
    }

    /// The error a second holder gets, saying what holds it and what to do.
    fn busy(self, detail: String) -> StoreError {
        match self {
            LockKey::RosterImport => StoreError::ImportRunning(detail),
            LockKey::Match => StoreError::MatchRunning(detail),
            LockKey::EvidenceImport(kind) => StoreError::EvidenceImportRunning {
                source_name: kind.run().1.to_string(),
                detail,
            },
            LockKey::PaymentsImport => StoreError::PaymentsImportRunning(detail),
            LockKey::Pull(source) => StoreError::PullRunning {
                source_name: source.to_string(),
                detail,
            },
        }
    }
}

/// The start of a SHA-256 of `text` with bits 63 and 62 cleared: an
/// advisory key that never meets the fixed ones (bit 62 set).
fn hashed_key(text: &str) -> i64 {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(id) & 0x3fff_ffff_ffff_ffff
}

/// Held while its holder runs; see [`Store::lock`]. Dropping it releases
/// the lock; [`StoreLock::release`] does so politely. It knows the run its
/// key names, which [`Store::start_locked_run`] records.
#[derive(Debug)]
pub struct StoreLock {
    inner: LockInner,
    kind: &'static str,
    source: String,
}

#[derive(Debug)]
enum LockInner {
    /// A connection outside the pool, with the advisory key it holds:
    /// dropping it closes the session, and with it the lock, even on an
    /// error path.
    Postgres(sqlx::PgConnection, i64),
    /// Holds an OS lock until closed.
    File {
        _held: std::fs::File,
    },
    None,
}

impl StoreLock {
    fn held(key: LockKey<'_>, inner: LockInner) -> StoreLock {
        let (kind, source) = key.run();
        StoreLock {
            inner,
            kind,
            source: source.to_string(),
        }
    }

    /// The run this lock is for: (kind, source).
    pub fn run(&self) -> (&'static str, &str) {
        (self.kind, &self.source)
    }

    pub async fn release(self) {
        if let LockInner::Postgres(mut conn, id) = self.inner {
            let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(id)
                .execute(&mut conn)
                .await;
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

/// The migrations of one backend, embedded so the binary is self-contained.
fn migrator(backend: Backend) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match backend {
        Backend::Sqlite => &[
            (
                1,
                "spine",
                include_str!("../../migrations/sqlite/0001_spine.sql"),
            ),
            (
                2,
                "deaths",
                include_str!("../../migrations/sqlite/0002_deaths.sql"),
            ),
            (
                3,
                "matches",
                include_str!("../../migrations/sqlite/0003_matches.sql"),
            ),
            (
                4,
                "evidence",
                include_str!("../../migrations/sqlite/0004_evidence.sql"),
            ),
            (
                5,
                "events",
                include_str!("../../migrations/sqlite/0005_events.sql"),
            ),
            (
                6,
                "roster key index",
                include_str!("../../migrations/sqlite/0006_roster_key_index.sql"),
            ),
            (
                7,
                "proofs_of_life",
                include_str!("../../migrations/sqlite/0007_proofs_of_life.sql"),
            ),
            (
                8,
                "match may_carry",
                include_str!("../../migrations/sqlite/0008_match_may_carry.sql"),
            ),
            (
                9,
                "roster state",
                include_str!("../../migrations/sqlite/0009_roster_state.sql"),
            ),
            (
                10,
                "match progress without rowid",
                include_str!("../../migrations/sqlite/0010_match_progress_without_rowid.sql"),
            ),
            (
                11,
                "cases",
                include_str!("../../migrations/sqlite/0011_cases.sql"),
            ),
            (
                12,
                "terminated index",
                include_str!("../../migrations/sqlite/0012_terminated_index.sql"),
            ),
        ],
        Backend::Postgres => &[
            (
                1,
                "spine",
                include_str!("../../migrations/postgres/0001_spine.sql"),
            ),
            (
                2,
                "deaths",
                include_str!("../../migrations/postgres/0002_deaths.sql"),
            ),
            (
                3,
                "matches",
                include_str!("../../migrations/postgres/0003_matches.sql"),
            ),
            (
                4,
                "evidence",
                include_str!("../../migrations/postgres/0004_evidence.sql"),
            ),
            (
                5,
                "events",
                include_str!("../../migrations/postgres/0005_events.sql"),
            ),
            (
                6,
                "roster key index",
                include_str!("../../migrations/postgres/0006_roster_key_index.sql"),
            ),
            (
                7,
                "proofs_of_life",
                include_str!("../../migrations/postgres/0007_proofs_of_life.sql"),
            ),
            (
                8,
                "match may_carry",
                include_str!("../../migrations/postgres/0008_match_may_carry.sql"),
            ),
            (
                9,
                "roster state",
                include_str!("../../migrations/postgres/0009_roster_state.sql"),
            ),
            (
                10,
                "match progress without rowid",
                include_str!("../../migrations/postgres/0010_match_progress_without_rowid.sql"),
            ),
            (
                11,
                "cases",
                include_str!("../../migrations/postgres/0011_cases.sql"),
            ),
            (
                12,
                "terminated index",
                include_str!("../../migrations/postgres/0012_terminated_index.sql"),
            ),
        ],
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|(version, description, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Now, as stored: RFC 3339 UTC with microseconds, identical on both backends
/// (the audit hash chain depends on the text round-tripping exactly).
pub fn now_utc_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::LockKey;

    #[test]
    fn every_lock_has_a_file_of_its_own() {
        let keys = [
            LockKey::RosterImport,
            LockKey::Match,
            LockKey::EvidenceImport(super::runs::EvidenceKind::LifeEvidence),
            LockKey::EvidenceImport(super::runs::EvidenceKind::VideoResults),
            LockKey::PaymentsImport,
            LockKey::Pull("funeral"),
            LockKey::Pull("import-evidence_of_life"),
            // A plain name and a name written in hex that spells it.
            LockKey::Pull("x612062"),
            LockKey::Pull("a b"),
            LockKey::Pull("../etc"),
        ];
        let files: Vec<String> = keys.iter().map(|k| k.file_suffix()).collect();
        for (i, f) in files.iter().enumerate() {
            assert!(!f.contains('/'), "{f}");
            assert_eq!(
                files.iter().filter(|g| *g == f).count(),
                1,
                "{:?} shares {f}",
                keys[i]
            );
        }
        assert_eq!(LockKey::Pull("a b").file_suffix(), "pull.612062");
        // And no two share an advisory key.
        let ids: std::collections::HashSet<i64> = keys.iter().map(|k| k.advisory_id()).collect();
        assert_eq!(ids.len(), keys.len());
    }
}
