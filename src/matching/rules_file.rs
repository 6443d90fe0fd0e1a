//! Which matching rules a command uses, and reading them: the file named,
//! else `rules/matching.toml` in the working directory if present, else the
//! built-in rules. The file edge of [`super::rules`], which never reads a
//! file itself; every command that takes `--rules` comes through here, so
//! they all fall back the same way.

use std::io;
use std::path::{Path, PathBuf};

use super::propose::DEFAULT_RULES_PATH;
use super::rules::{MatchRules, RulesError};

/// Why the rules a command was given cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the rules in {} are invalid", path.display())]
    Invalid {
        path: PathBuf,
        #[source]
        source: RulesError,
    },
}

/// The rules file that is used: the one named, else `rules/matching.toml`
/// if present; `None` means the built-in rules.
pub fn rules_path_in_use(path: Option<&Path>) -> Option<PathBuf> {
    let default_path = Path::new(DEFAULT_RULES_PATH);
    match path {
        Some(p) => Some(p.to_path_buf()),
        None if default_path.exists() => Some(default_path.to_path_buf()),
        None => None,
    }
}

/// The rules [`rules_path_in_use`] names, read and validated; the built-in
/// rules when it names none.
pub fn load_rules(path: Option<&Path>) -> Result<MatchRules, RulesFileError> {
    match rules_path_in_use(path) {
        None => Ok(MatchRules::default_rules()),
        Some(path) => {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(source) => return Err(RulesFileError::Read { path, source }),
            };
            MatchRules::from_toml(&text).map_err(|source| RulesFileError::Invalid { path, source })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_rules_file_that_is_not_there_says_which_file() {
        let e = load_rules(Some(Path::new("no/such/rules.toml"))).unwrap_err();
        assert_eq!(e.to_string(), "reading no/such/rules.toml");
        assert!(matches!(e, RulesFileError::Read { .. }));
    }

    #[test]
    fn a_named_rules_file_is_read_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, super::super::rules::DEFAULT_RULES_TOML).unwrap();
        assert_eq!(
            load_rules(Some(&good)).unwrap(),
            MatchRules::default_rules()
        );
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "version = 3\n").unwrap();
        let e = load_rules(Some(&bad)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the rules in {} are invalid", bad.display())
        );
    }
}
