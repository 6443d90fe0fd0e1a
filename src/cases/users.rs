//! Users and their roles: adding, disabling and enabling the people who
//! work the queue, and telling who someone is from their name and
//! password, as the [`Actor`] the case machine decides with.
//!
//! An edge of `cases`, not its pure core: it keeps users in the store and
//! writes an audit entry for every change (who did it, what, before and
//! after). It must never store, log, audit or show a password, nor the
//! hash of one; it never deletes a user (a name in a case's history must
//! keep meaning someone), and it never tells a caller whether a name
//! exists when the password is wrong.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use serde::Serialize;

use super::machine::{Actor, Role};
use crate::audit;
use crate::store::users::{SetEnabled, StoredUser};
use crate::store::{Store, StoreError};

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A user as the rest of vigil sees one: never the password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub enabled: bool,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC: last created, disabled or enabled.
    pub changed_at: String,
}

impl User {
    fn from_stored(u: StoredUser) -> Result<User, StoreError> {
        let role = Role::parse(&u.role).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "user {} has the role {:?}, which is none of {}",
                u.name,
                u.role,
                Role::names()
            ))
        })?;
        Ok(User {
            name: u.name,
            role,
            enabled: u.enabled,
            created_at: u.created_at,
            changed_at: u.changed_at,
        })
    }
}

/// Why a user could not be added, disabled or enabled.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a user name cannot be empty or blank")]
    BlankName,
    #[error(
        "the user name {0:?} begins or ends with a space or holds a control character; \
         choose one without"
    )]
    InvalidName(String),
    #[error("there is already a user named {0}; `vigil user list` lists them")]
    Duplicate(String),
    #[error("the password is too short: it needs at least {MIN_PASSWORD_CHARS} characters")]
    PasswordTooShort,
    #[error("there is no user named {0}; `vigil user list` lists them")]
    NoSuchUser(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why [`authenticate`] gave no actor.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The same for an unknown name and a wrong password, so that nobody
    /// learns which names exist by trying.
    #[error("unknown user or wrong password")]
    Rejected,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds an enabled user with `role` and `password` (stored only as its
/// argon2id hash with a random salt), audited as `user.add` by `by`.
pub async fn add_user(
    store: &Store,
    name: &str,
    role: Role,
    password: &str,
    by: &str,
) -> Result<User, UserError> {
    check_name(name)?;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(UserError::PasswordTooShort);
    }
    // Refused before the slow hash when the name is plainly taken; the
    // insert still decides if two adds race.
    if store.get_user(name).await?.is_some() {
        return Err(UserError::Duplicate(name.to_string()));
    }
    let hash = hash_password(password.to_string()).await?;
    let Some(stored) = store.insert_user(name, role.as_str(), &hash).await? else {
        return Err(UserError::Duplicate(name.to_string()));
    };
    let user = User::from_stored(stored)?;
    audit::append(
        store,
        by,
        "user.add",
        &user.name,
        &serde_json::json!({
            "before": null,
            "after": {"role": user.role, "enabled": user.enabled},
        }),
    )
    .await?;
    Ok(user)
}

/// Disables user `name`, audited as `user.disable` by `by`: they can still
/// authenticate, but the case machine refuses every step they try.
/// Returns the user as they are now and whether this changed anything
/// (disabling a disabled user writes nothing, audit included).
pub async fn disable_user(store: &Store, name: &str, by: &str) -> Result<(User, bool), UserError> {
    set_enabled(store, name, false, by).await
}

/// Enables user `name` again, audited as `user.enable` by `by`; as
/// [`disable_user`] otherwise.
pub async fn enable_user(store: &Store, name: &str, by: &str) -> Result<(User, bool), UserError> {
    set_enabled(store, name, true, by).await
}

async fn set_enabled(
    store: &Store,
    name: &str,
    enabled: bool,
    by: &str,
) -> Result<(User, bool), UserError> {
    match store.set_user_enabled(name, enabled).await? {
        SetEnabled::NoSuchUser => Err(UserError::NoSuchUser(name.to_string())),
        SetEnabled::Unchanged(stored) => Ok((User::from_stored(stored)?, false)),
        SetEnabled::Changed(stored) => {
            let user = User::from_stored(stored)?;
            audit::append(
                store,
                by,
                if enabled {
                    "user.enable"
                } else {
                    "user.disable"
                },
                &user.name,
                &serde_json::json!({
                    "before": {"role": user.role, "enabled": !enabled},
                    "after": {"role": user.role, "enabled": enabled},
                }),
            )
            .await?;
            Ok((user, true))
        }
    }
}

/// Every user, ordered by name.
pub async fn list_users(store: &Store) -> Result<Vec<User>, UserError> {
    let users = store
        .list_users()
        .await?
        .into_iter()
        .map(User::from_stored)
        .collect::<Result<_, _>>()?;
    Ok(users)
}

/// The actor `name` is when `password` is theirs. A disabled user
/// authenticates too, as an actor with `enabled: false`, so that the case
/// machine refuses them with its own message.
pub async fn authenticate(store: &Store, name: &str, password: &str) -> Result<Actor, AuthError> {
    let stored = store.get_user(name).await?;
    // An unknown name costs the same hash as a known one: how long the
    // answer takes must not tell which names exist.
    let hash = match &stored {
        Some(u) => u.password_hash.clone(),
        None => dummy_hash().to_string(),
    };
    let verified = verify_password(password.to_string(), hash).await;
    match stored {
        Some(stored) if verified => {
            let user = User::from_stored(stored)?;
            Ok(Actor {
                user: user.name,
                role: user.role,
                enabled: user.enabled,
            })
        }
        _ => Err(AuthError::Rejected),
    }
}

fn check_name(name: &str) -> Result<(), UserError> {
    if name.trim().is_empty() {
        return Err(UserError::BlankName);
    }
    if name.trim() != name || name.chars().any(char::is_control) {
        return Err(UserError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// The argon2id PHC string of `password` with a fresh random salt
/// (argon2's default parameters), computed off the async workers: a hash
/// takes tens of milliseconds and 19 MiB on purpose.
async fn hash_password(password: String) -> Result<String, UserError> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| UserError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| UserError::Hash(e.to_string()))?
}

/// Whether `password` is the one `hash` was made from. A hash that does
/// not parse verifies nothing.
async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash no password is known to match, for unknown names to be checked
/// against.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        Argon2::default()
            .hash_password(hex::encode(secret).as_bytes())
            .map(|h| h.to_string())
            // Hashing with the default parameters cannot fail short of
            // running out of memory; a hash that does not parse still
            // verifies nothing.
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_padded_names_are_refused() {
        assert!(matches!(check_name(""), Err(UserError::BlankName)));
        assert!(matches!(check_name("  \t"), Err(UserError::BlankName)));
        assert!(matches!(check_name(" li"), Err(UserError::InvalidName(_))));
        assert!(matches!(check_name("li\n"), Err(UserError::InvalidName(_))));
        assert!(check_name("li wei").is_ok());
        assert!(check_name("李伟").is_ok());
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_is_salted() {
        let a = hash_password("correct horse".to_string()).await.unwrap();
        let b = hash_password("correct horse".to_string()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password("correct horse".to_string(), a.clone()).await);
        assert!(!verify_password("correct horsf".to_string(), a).await);
        assert!(!verify_password("x".to_string(), "not a hash".to_string()).await);
    }

    #[test]
    fn the_dummy_hash_is_a_real_hash() {
        assert!(dummy_hash().starts_with("$argon2id$"));
    }
}
