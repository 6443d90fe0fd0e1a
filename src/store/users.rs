//! Users: the people who work the queue, as the `users` table keeps them
//! (name, role, argon2 password hash, enabled flag, when created and last
//! changed).
//!
//! Plain storage: it inserts, flips the enabled flag and fetches. It never
//! hashes or checks a password, never decides who may do what, and keeps
//! the role as the text it is handed (the roles are the case machine's,
//! a layer above this one). Nothing is ever deleted: a user who leaves is
//! disabled, so every name in a case's history still says who it was.

use super::with_pool;
use super::{Result, Store, now_utc_text};

/// A user as stored.
///
/// `Debug` leaves the password hash out: a hash in a log is a hash someone
/// can try to crack offline.
#[derive(Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredUser {
    /// The login name; what every history and audit entry records.
    pub name: String,
    /// The role's name, as the case machine spells it.
    pub role: String,
    /// An argon2 PHC string (`$argon2id$v=19$…`), salt included.
    pub password_hash: String,
    /// A disabled user still exists (their past steps name them) but may
    /// do nothing.
    pub enabled: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: the last time the row changed (created, disabled,
    /// enabled).
    pub changed_at: String,
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("password_hash", &"<hidden>")
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("changed_at", &self.changed_at)
            .finish()
    }
}

/// What [`Store::set_user_enabled`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEnabled {
    /// The flag changed; the user as they are now.
    Changed(StoredUser),
    /// The user already had that flag; nothing was written.
    Unchanged(StoredUser),
    NoSuchUser,
}

impl Store {
    /// Stores a new, enabled user. Returns `None`, changing nothing, when
    /// the name is taken (also when another writer took it a moment
    /// before: the primary key decides, not a check beforehand).
    pub async fn insert_user(
        &self,
        name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<Option<StoredUser>> {
        let now = now_utc_text();
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredUser>(
                "INSERT INTO users (name, role, password_hash, enabled, created_at, changed_at) \
                 VALUES ($1, $2, $3, TRUE, $4, $4) ON CONFLICT (name) DO NOTHING \
                 RETURNING name, role, password_hash, enabled, created_at, changed_at",
            )
            .bind(name)
            .bind(role)
            .bind(password_hash)
            .bind(&now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Sets whether user `name` is enabled. Setting the flag the user
    /// already has changes nothing, `changed_at` included.
    pub async fn set_user_enabled(&self, name: &str, enabled: bool) -> Result<SetEnabled> {
        let now = now_utc_text();
        // One conditional statement: of two people disabling the same user
        // at once, exactly one sees `Changed`, on either backend.
        let changed = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredUser>(
                "UPDATE users SET enabled = $2, changed_at = $3 \
                 WHERE name = $1 AND enabled <> $2 \
                 RETURNING name, role, password_hash, enabled, created_at, changed_at",
            )
            .bind(name)
            .bind(enabled)
            .bind(&now)
            .fetch_optional(pool)
            .await
        })?;
        Ok(match changed {
            Some(user) => SetEnabled::Changed(user),
            None => match self.get_user(name).await? {
                Some(user) => SetEnabled::Unchanged(user),
                None => SetEnabled::NoSuchUser,
            },
        })
    }

    /// User `name`, if there is one.
    pub async fn get_user(&self, name: &str) -> Result<Option<StoredUser>> {
        let row = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredUser>(
                "SELECT name, role, password_hash, enabled, created_at, changed_at \
                 FROM users WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(pool)
            .await
        })?;
        Ok(row)
    }

    /// Every user, ordered by name byte for byte (the same order on both
    /// backends, whatever collation a PostgreSQL database was created
    /// with).
    pub async fn list_users(&self) -> Result<Vec<StoredUser>> {
        let mut rows = with_pool!(self, pool => {
            sqlx::query_as::<_, StoredUser>(
                "SELECT name, role, password_hash, enabled, created_at, changed_at FROM users",
            )
            .fetch_all(pool)
            .await
        })?;
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(rows)
    }
}
