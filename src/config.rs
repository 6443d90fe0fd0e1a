//! Layered settings: built-in defaults, then `vigil.toml` (or the file named
//! by `--config` / `VIGIL_CONFIG`), then `VIGIL__SECTION__KEY` environment
//! variables, then the global `--database-url` flag.
//!
//! Secrets (the database URL may carry a password) live in [`Secret`], whose
//! `Debug` and `Display` never show the value, so a stray `{:?}` in a log line
//! cannot leak them.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::identity::RegionLevel;

/// Where the settings file is looked for when none is named.
pub const DEFAULT_CONFIG_FILE: &str = "vigil.toml";
/// The embedded default database: a SQLite file beside the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://vigil.db";
/// The log filter when none is set: warnings and errors only. A command
/// prints its result and its progress bar; its steps show with `-v`.
pub const DEFAULT_LOG_LEVEL: &str = "warn";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("settings file {path} does not exist")]
    MissingFile { path: PathBuf },
    #[error("settings are invalid: {0}")]
    Invalid(#[from] config::ConfigError),
}

/// A value that must never be printed in full.
#[derive(Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }
    /// The one way to read the value; grep for it to audit every use.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub identity: IdentitySettings,
    pub import: ImportSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub url: Secret<String>,
    /// Pool size; SQLite writes go through one connection regardless.
    pub max_connections: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IdentitySettings {
    /// At which level a pensioner living outside the insuring region counts
    /// as "living in another region" (certification puts them first).
    pub elsewhere_level: RegionLevel,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ImportSettings {
    /// Rows parsed and written per transaction; bounds memory and the size
    /// of what a crash can leave half-done.
    pub batch_rows: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `warn` (the default), `info` or
    /// `vigil=debug`. The command line's `-v` and `VIGIL_LOG` override it.
    pub level: String,
}

impl Settings {
    /// Loads the layers. `file` is the explicit `--config`; when it is
    /// `None`, `vigil.toml` in the working directory is used if present.
    pub fn load(file: Option<&Path>, database_url: Option<&str>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder()
            .set_default("database.url", DEFAULT_DATABASE_URL)?
            .set_default("database.max_connections", 8)?
            .set_default("identity.elsewhere_level", "province")?
            .set_default("import.batch_rows", 20_000)?
            .set_default("log.level", DEFAULT_LOG_LEVEL)?;
        match file {
            Some(path) => {
                if !path.exists() {
                    return Err(ConfigError::MissingFile {
                        path: path.to_path_buf(),
                    });
                }
                builder = builder.add_source(config::File::from(path).required(true));
            }
            None => {
                builder = builder
                    .add_source(config::File::with_name(DEFAULT_CONFIG_FILE).required(false));
            }
        }
        builder = builder.add_source(
            config::Environment::with_prefix("VIGIL")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        );
        if let Some(url) = database_url {
            builder = builder.set_override("database.url", url)?;
        }
        Ok(builder.build()?.try_deserialize()?)
    }

    /// The effective settings as TOML, secrets masked, for `vigil config show`.
    pub fn to_masked_toml(&self) -> String {
        #[derive(Serialize)]
        struct Shown<'a> {
            database: ShownDb,
            identity: ShownIdentity,
            import: ShownImport,
            log: ShownLog<'a>,
        }
        #[derive(Serialize)]
        struct ShownDb {
            url: String,
            max_connections: u32,
        }
        #[derive(Serialize)]
        struct ShownIdentity {
            elsewhere_level: RegionLevel,
        }
        #[derive(Serialize)]
        struct ShownImport {
            batch_rows: usize,
        }
        #[derive(Serialize)]
        struct ShownLog<'a> {
            level: &'a str,
        }
        let shown = Shown {
            database: ShownDb {
                url: mask_url_password(self.database.url.expose()),
                max_connections: self.database.max_connections,
            },
            identity: ShownIdentity {
                elsewhere_level: self.identity.elsewhere_level,
            },
            import: ShownImport {
                batch_rows: self.import.batch_rows,
            },
            log: ShownLog {
                level: &self.log.level,
            },
        };
        toml::to_string_pretty(&shown)
            .unwrap_or_else(|e| format!("# cannot render settings: {e}\n"))
    }
}

/// `postgres://user:pw@host/db` → `postgres://user:****@host/db`; URLs
/// without a password come back unchanged.
pub fn mask_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    match userinfo.find(':') {
        Some(colon) => format!(
            "{}{}:****{}",
            &url[..scheme_end + 3],
            &userinfo[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_in_database_url_is_masked() {
        assert_eq!(
            mask_url_password("postgres://vigil:s3cret@db.example:5432/vigil?sslmode=require"),
            "postgres://vigil:****@db.example:5432/vigil?sslmode=require"
        );
        assert_eq!(mask_url_password("sqlite://vigil.db"), "sqlite://vigil.db");
        assert_eq!(
            mask_url_password("postgres://postgres@127.0.0.1/test"),
            "postgres://postgres@127.0.0.1/test"
        );
    }

    #[test]
    fn logs_show_only_warnings_unless_a_level_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("vigil.toml");
        for (text, level) in [
            ("", "warn"),
            ("[log]\nlevel = \"vigil=debug\"\n", "vigil=debug"),
        ] {
            std::fs::write(&file, text).unwrap();
            let settings = Settings::load(Some(&file), None).unwrap();
            assert_eq!(settings.log.level, level, "{text:?}");
        }
    }

    #[test]
    fn secret_debug_never_shows_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
