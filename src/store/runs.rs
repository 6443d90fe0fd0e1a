//! Runs: one row per import or pull, with its counts, so that every input
//! record can be accounted for (read = stored + duplicates + quarantined).

use chrono::NaiveDate;
use serde::Serialize;

use super::with_pool;
use super::{BeginWrite, Result, Store, StoreLock, now_utc_text};

/// The kinds of run, as `vigil runs` lists them: every name in one place
/// (a lock names its run with them, [`super::LockKey::run`]).
pub mod run_kind {
    pub const ROSTER_IMPORT: &str = "roster_import";
    pub const PULL: &str = "pull";
    pub const MATCH: &str = "match";
    pub const EVIDENCE_IMPORT: &str = "evidence_import";
    pub const VIDEO_IMPORT: &str = "video_import";
    pub const PAYMENTS_IMPORT: &str = "payments_import";
}

/// The sources of the runs that have one fixed source (a pull's is the
/// name of the source it reads).
pub mod run_source {
    pub const ROSTER: &str = "roster";
    pub const MATCHER: &str = "matcher";
    pub const EVIDENCE_OF_LIFE: &str = "evidence_of_life";
    pub const VIDEO_RESULTS: &str = "video_results";
    pub const PAYMENT_LEDGER: &str = "payment_ledger";
}

/// Which of the two evidence files an import reads; each kind is imported
/// one at a time (what an import does with it is the evidence import's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// Spec §5: `id_number,event_type,event_date,source_ref`.
    LifeEvidence,
    /// Spec §6: `id_number,session_at,result,operator,note`.
    VideoResults,
}

impl EvidenceKind {
    /// (kind, source) as `vigil runs` lists the import.
    pub fn run(self) -> (&'static str, &'static str) {
        match self {
            EvidenceKind::LifeEvidence => (run_kind::EVIDENCE_IMPORT, run_source::EVIDENCE_OF_LIFE),
            EvidenceKind::VideoResults => (run_kind::VIDEO_IMPORT, run_source::VIDEO_RESULTS),
        }
    }

    /// The quarantine's `source` and the run's source.
    pub fn source(self) -> &'static str {
        self.run().1
    }

    /// The run's kind, as `vigil runs` lists it.
    pub fn run_kind(self) -> &'static str {
        self.run().0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Ok,
    Failed,
    /// Left `running` by a process that stopped before finishing it (killed,
    /// or the machine went down); marked so by the next run of its kind.
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Ok => "ok",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// What a run did, in the words of the summary a user reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    pub read: u64,
    pub inserted: u64,
    pub changed: u64,
    pub unchanged: u64,
    pub quarantined: u64,
    pub missing: u64,
    /// Counts particular to one kind of run, as JSON (e.g. `reappeared`).
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: i64,
    pub kind: String,
    pub source: String,
    pub file: Option<String>,
    pub file_sha256: Option<String>,
    pub as_of: Option<NaiveDate>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub read_count: i64,
    pub inserted: i64,
    pub changed: i64,
    pub unchanged: i64,
    pub quarantined: i64,
    pub missing: i64,
    pub details: String,
    pub message: Option<String>,
}

const RUN_COLUMNS: &str = "id, kind, source, file, file_sha256, as_of, started_at, finished_at, status, \
     read_count, inserted, changed, unchanged, quarantined, missing, details, message";

impl Store {
    /// Records that the run `lock` is for ([`super::LockKey::run`]) has
    /// started; returns its id. A run that takes a lock starts through this,
    /// so its kind and source are the lock's.
    pub async fn start_locked_run(
        &self,
        lock: &StoreLock,
        file: Option<&str>,
        as_of: Option<NaiveDate>,
    ) -> Result<i64> {
        let (kind, source) = lock.run();
        self.start_run(kind, source, file, as_of).await
    }

    /// Records that a run of `kind` and `source` has started; returns its
    /// id. A run that takes a lock starts with [`Store::start_locked_run`]
    /// instead; this is for tests that leave a run behind as a killed
    /// process would.
    #[doc(hidden)]
    pub async fn start_run(
        &self,
        kind: &str,
        source: &str,
        file: Option<&str>,
        as_of: Option<NaiveDate>,
    ) -> Result<i64> {
        let started = now_utc_text();
        let id = with_pool!(self, pool => {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO runs (kind, source, file, as_of, started_at, status) \
                 VALUES ($1, $2, $3, $4, $5, 'running') RETURNING id",
            )
            .bind(kind)
            .bind(source)
            .bind(file)
            .bind(as_of)
            .bind(&started)
            .fetch_one(pool)
            .await
        })?;
        Ok(id)
    }

    /// Marks the runs that `held` is for ([`StoreLock::run`]) still
    /// `running` as [`RunStatus::Abandoned`] and drops the match claims they
    /// held, so that their records are pending again and the run list says
    /// what happened. Only the holder of the lock that every such run holds
    /// may call this: with the lock taken, no run of that kind is alive, so
    /// whatever still says `running` died. Returns their ids.
    pub(super) async fn abandon_dead_runs(&self, held: &StoreLock) -> Result<Vec<i64>> {
        let (kind, source) = held.run();
        let now = now_utc_text();
        let ids = with_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut ids: Vec<i64> = sqlx::query_scalar(
                "UPDATE runs SET status = $1, finished_at = $2, message = $3 \
                 WHERE kind = $4 AND source = $5 AND status = 'running' RETURNING id",
            )
            .bind(RunStatus::Abandoned.as_str())
            .bind(&now)
            .bind(
                "the process running it stopped before it finished; nothing it had not \
                 committed was kept",
            )
            .bind(kind)
            .bind(source)
            .fetch_all(&mut *tx)
            .await?;
            for id in &ids {
                sqlx::query("DELETE FROM match_claims WHERE run_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            ids.sort_unstable();
            tx.commit().await.map(|()| ids)
        })?;
        if !ids.is_empty() {
            tracing::warn!(
                kind,
                source,
                runs = ?ids,
                "runs left running by a process that stopped are marked abandoned"
            );
        }
        Ok(ids)
    }

    pub async fn finish_run(
        &self,
        id: i64,
        status: RunStatus,
        counts: &RunCounts,
        file_sha256: Option<&str>,
        message: Option<&str>,
    ) -> Result<()> {
        let finished = now_utc_text();
        let details = if counts.details.is_null() {
            "{}".to_string()
        } else {
            counts.details.to_string()
        };
        with_pool!(self, pool => {
            sqlx::query(
                "UPDATE runs SET status = $1, finished_at = $2, read_count = $3, inserted = $4, \
                 changed = $5, unchanged = $6, quarantined = $7, missing = $8, details = $9, \
                 message = $10, file_sha256 = COALESCE($11, file_sha256) WHERE id = $12",
            )
            .bind(status.as_str())
            .bind(&finished)
            .bind(counts.read as i64)
            .bind(counts.inserted as i64)
            .bind(counts.changed as i64)
            .bind(counts.unchanged as i64)
            .bind(counts.quarantined as i64)
            .bind(counts.missing as i64)
            .bind(&details)
            .bind(message)
            .bind(file_sha256)
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The most recent runs first.
    pub async fn list_runs(&self, limit: i64) -> Result<Vec<Run>> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"
        ));
        let runs = with_pool!(self, pool => {
            sqlx::query_as::<_, Run>(sql).bind(limit).fetch_all(pool).await
        })?;
        Ok(runs)
    }

    pub async fn get_run(&self, id: i64) -> Result<Option<Run>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1"));
        let run = with_pool!(self, pool => {
            sqlx::query_as::<_, Run>(sql).bind(id).fetch_optional(pool).await
        })?;
        Ok(run)
    }

    /// The snapshot date of the latest successful roster import, if any.
    pub async fn last_roster_as_of(&self) -> Result<Option<NaiveDate>> {
        let d = with_pool!(self, pool => {
            sqlx::query_scalar::<_, Option<NaiveDate>>(
                "SELECT MAX(as_of) FROM runs WHERE kind = $1 AND status = 'ok'",
            )
            .bind(run_kind::ROSTER_IMPORT)
            .fetch_one(pool)
            .await
        })?;
        Ok(d)
    }
}
