//! Connector definitions: one TOML file per source in `connectors/`, read
//! and checked here, so that a fourth source of a known kind is a new file
//! and nothing else.
//!
//! This module owns the schema and its validation. It never reads a token
//! (only the *name* of the variable that holds it) and never touches the
//! network or the database.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// How a source hands out its records (spec/sources.md §2-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    /// Cursor-paged JSON over HTTP with a `since` watermark (public security).
    HttpCursorJson,
    /// CSV files dropped in a directory (civil affairs).
    CsvDir,
    /// An HTTP index of JSON Lines files (funeral platform).
    HttpJsonlIndex,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::HttpCursorJson => "http_cursor_json",
            TransportKind::CsvDir => "csv_dir",
            TransportKind::HttpJsonlIndex => "http_jsonl_index",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum SourceEncoding {
    #[default]
    #[serde(rename = "utf-8", alias = "utf8", alias = "UTF-8")]
    Utf8,
    #[serde(rename = "gbk", alias = "GBK")]
    Gbk,
}

/// A bearer token. `Debug` and `Display` never show it, so it cannot leak
/// through a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The token itself; only the HTTP layer calls this.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The name of the environment variable holding the bearer token.
    pub bearer_token_env: String,
}

/// Timeouts and the retry policy of an HTTP source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpPolicy {
    pub connect_timeout_ms: u64,
    /// The whole request, body included.
    pub timeout_ms: u64,
    /// Attempts per request, the first included; then the run fails.
    pub max_attempts: u32,
    /// First backoff; doubled per attempt, with jitter, up to `max_delay_ms`.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// A `Retry-After` longer than this is treated as this: a server asking
    /// for an hour's pause should fail the run, not hang it.
    pub max_retry_after_ms: u64,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            connect_timeout_ms: 5_000,
            timeout_ms: 30_000,
            max_attempts: 6,
            base_delay_ms: 250,
            max_delay_ms: 30_000,
            max_retry_after_ms: 300_000,
        }
    }
}

impl HttpPolicy {
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Paging {
    /// Path of the paged endpoint under `base_url`.
    pub path: String,
    /// Records per page; the source allows at most 1000.
    pub limit: u32,
    /// `since` for the very first pull, RFC 3339.
    #[serde(default = "default_initial_since")]
    pub initial_since: String,
}

fn default_initial_since() -> String {
    "1970-01-01T00:00:00Z".to_string()
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Files {
    /// `http_jsonl_index`: path of the index under `base_url`.
    pub index: Option<String>,
    /// `http_jsonl_index`: prefix of the listed names under `base_url`.
    pub prefix: Option<String>,
    /// `csv_dir`: file names to take end with this.
    #[serde(default = "default_suffix")]
    pub suffix: String,
}

fn default_suffix() -> String {
    ".csv".to_string()
}

/// Which version of a re-delivered record wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precedence {
    /// The one received last.
    #[default]
    Arrival,
    /// The one from the file that sorts last, `_vN` counted as a number
    /// (civil affairs: `X_20261101.csv` < `X_20261101_v2.csv` < `_v10`).
    FileVersion,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Source fields whose values, joined by `:`, make the record key.
    pub key: Vec<String>,
    #[serde(default)]
    pub precedence: Precedence,
}

/// Where each field of the normalised record comes from in the source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMap {
    pub name: String,
    pub id_number: Option<String>,
    pub sex: Option<String>,
    pub birth_date: Option<String>,
    /// Age at death in whole years, when there is no birth date.
    pub age: Option<String>,
    pub death_date: String,
    /// Used when `death_date` is empty; the record is then flagged: the date
    /// is only the latest the death can be.
    pub death_date_fallback: Option<String>,
    /// The source's own event date (cancellation, cremation).
    pub event_date: Option<String>,
    pub region: Option<String>,
    pub place: Option<String>,
}

impl FieldMap {
    /// Every source field named, with the key it is named under.
    pub fn named(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("name", self.name.as_str())];
        out.push(("death_date", self.death_date.as_str()));
        for (k, v) in [
            ("id_number", &self.id_number),
            ("sex", &self.sex),
            ("birth_date", &self.birth_date),
            ("age", &self.age),
            ("death_date_fallback", &self.death_date_fallback),
            ("event_date", &self.event_date),
            ("region", &self.region),
            ("place", &self.place),
        ] {
            if let Some(v) = v {
                out.push((k, v.as_str()));
            }
        }
        out
    }
}

/// Which records are deaths; the others are stored as non-death events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub field: String,
    pub death_values: Vec<String>,
}

/// One source, as its TOML file describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The source name records and runs carry; defaults to the file stem.
    #[serde(default)]
    pub name: String,
    pub kind: TransportKind,
    pub base_url: Option<String>,
    pub dir: Option<PathBuf>,
    /// Allows plain `http://` to a host that is not loopback. Only for a
    /// network the agency trusts end to end.
    #[serde(default)]
    pub allow_insecure: bool,
    #[serde(default)]
    pub encoding: SourceEncoding,
    pub auth: Option<Auth>,
    #[serde(default)]
    pub http: HttpPolicy,
    pub paging: Option<Paging>,
    #[serde(default)]
    pub files: Files,
    pub record: RecordSpec,
    pub fields: FieldMap,
    /// Source value → GB/T 2261.1 code (`男` → 1).
    #[serde(default)]
    pub sex_codes: BTreeMap<String, i32>,
    /// chrono formats tried in order for every date field.
    pub date_formats: Vec<String>,
    pub filter: Option<Filter>,
    /// The file this came from, for messages.
    #[serde(skip)]
    pub file: PathBuf,
    /// A token given at run time (tests, the demo) instead of the variable.
    #[serde(skip)]
    pub token_override: Option<Secret>,
}

impl Definition {
    /// The same definition pointed at another server (the demo, tests).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The same definition reading another directory.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Uses `token` instead of reading the environment variable.
    pub fn with_token(mut self, token: Secret) -> Self {
        self.token_override = Some(token);
        self
    }

    /// Shorter retry delays (tests).
    pub fn with_retry_delays(mut self, base: Duration, max: Duration) -> Self {
        self.http.base_delay_ms = base.as_millis() as u64;
        self.http.max_delay_ms = max.as_millis() as u64;
        self
    }

    /// The problems of this definition, each naming the key at fault.
    pub fn problems(&self) -> Vec<DefinitionError> {
        let mut out = Vec::new();
        let mut bad = |key: &str, message: String| {
            out.push(DefinitionError {
                file: self.file.clone(),
                key: Some(key.to_string()),
                message,
            })
        };
        match self.kind {
            TransportKind::HttpCursorJson | TransportKind::HttpJsonlIndex => match &self.base_url {
                None => bad("base_url", "missing: an HTTP source needs base_url".into()),
                Some(url) => {
                    if let Err(m) = check_url(url, self.allow_insecure) {
                        bad("base_url", m)
                    }
                }
            },
            TransportKind::CsvDir => {
                if self.dir.is_none() {
                    bad("dir", "missing: a csv_dir source needs dir".into())
                }
            }
        }
        match (self.kind, &self.paging) {
            (TransportKind::HttpCursorJson, None) => bad(
                "paging",
                "missing: http_cursor_json needs [paging] with path and limit".into(),
            ),
            (TransportKind::HttpCursorJson, Some(p)) => {
                if p.limit == 0 || p.limit > 1000 {
                    bad(
                        "paging.limit",
                        format!("{} is out of range: use 1 to 1000", p.limit),
                    )
                }
                if !p.path.starts_with('/') {
                    bad("paging.path", "must start with /".into())
                }
                if chrono::DateTime::parse_from_rfc3339(&p.initial_since).is_err() {
                    bad(
                        "paging.initial_since",
                        "not an RFC 3339 instant such as 2026-01-01T00:00:00Z".into(),
                    )
                }
            }
            (_, Some(_)) => bad(
                "paging",
                format!(
                    "only http_cursor_json uses paging, not {}",
                    self.kind.as_str()
                ),
            ),
            _ => {}
        }
        if self.kind == TransportKind::HttpJsonlIndex && self.files.index.is_none() {
            bad(
                "files.index",
                "missing: http_jsonl_index needs the path of the index".into(),
            )
        }
        if let Some(auth) = &self.auth {
            let name = &auth.bearer_token_env;
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                bad(
                    "auth.bearer_token_env",
                    "must be the NAME of an environment variable (A-Z, 0-9, _), never the token"
                        .into(),
                )
            }
        }
        if self.http.max_attempts == 0 {
            bad("http.max_attempts", "must be at least 1".into())
        }
        if self.http.timeout_ms == 0 || self.http.connect_timeout_ms == 0 {
            bad("http.timeout_ms", "timeouts must be above 0".into())
        }
        if self.record.key.is_empty() || self.record.key.iter().any(|k| k.is_empty()) {
            bad(
                "record.key",
                "name at least one source field, none empty".into(),
            )
        }
        if self.fields.name.is_empty() {
            bad("fields.name", "must name a source field".into())
        }
        if self.date_formats.is_empty() {
            bad("date_formats", "give at least one chrono format".into())
        }
        let probe = chrono::NaiveDate::from_ymd_opt(1942, 3, 15).expect("a real date");
        for f in &self.date_formats {
            let text = {
                use std::fmt::Write;
                let mut s = String::new();
                write!(s, "{}", probe.format(f)).map(|_| s)
            };
            let ok = text
                .ok()
                .and_then(|t| chrono::NaiveDate::parse_from_str(&t, f).ok())
                == Some(probe);
            if !ok {
                bad(
                    "date_formats",
                    format!("{f:?} does not read back a full date (year, month and day)"),
                )
            }
        }
        for (value, code) in &self.sex_codes {
            if ![0, 1, 2, 9].contains(code) {
                bad(
                    &format!("sex_codes.{value}"),
                    format!("{code} is not a GB/T 2261.1 code: use 0, 1, 2 or 9"),
                )
            }
        }
        if let Some(f) = &self.filter
            && (f.field.is_empty() || f.death_values.is_empty())
        {
            bad(
                "filter",
                "name the field and at least one value meaning death".into(),
            )
        }
        if self.fields.age.is_some() && self.fields.birth_date.is_some() {
            // Both may exist in a source; the birth date is then preferred.
        }
        out
    }
}

/// Refuses plain `http://` to anything but loopback unless allowed.
pub fn check_url(url: &str, allow_insecure: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" => {
            let loopback = match parsed.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            if loopback || allow_insecure {
                Ok(())
            } else {
                Err(format!(
                    "plain http:// to {} is refused: use https://, or set allow_insecure = true \
                     if this network is trusted end to end",
                    parsed.host_str().unwrap_or("?")
                ))
            }
        }
        other => Err(format!("scheme {other}: is not supported; use https://")),
    }
}

/// One problem with one definition file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{message}", file.display(), key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct DefinitionError {
    pub file: PathBuf,
    /// The key at fault, dotted (`paging.limit`), when known.
    pub key: Option<String>,
    pub message: String,
}

/// Reads every `*.toml` in `dir`, sorted by name. Returns the definitions,
/// or every problem found in every file (not just the first).
pub fn load_definitions(dir: &Path) -> Result<Vec<Definition>, Vec<DefinitionError>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![DefinitionError {
                file: dir.to_path_buf(),
                key: None,
                message: format!("cannot read the connectors directory: {e}"),
            }]);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut defs = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_definition(&file) {
            Ok(d) => defs.push(d),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let mut seen = BTreeMap::new();
    for d in &defs {
        if let Some(first) = seen.insert(d.name.clone(), d.file.clone()) {
            errors.push(DefinitionError {
                file: d.file.clone(),
                key: Some("name".into()),
                message: format!(
                    "source name {} is already used by {}",
                    d.name,
                    first.display()
                ),
            });
        }
    }
    if errors.is_empty() {
        Ok(defs)
    } else {
        Err(errors)
    }
}

/// Reads and checks one definition file.
pub fn load_definition(file: &Path) -> Result<Definition, Vec<DefinitionError>> {
    let err = |key: Option<String>, message: String| DefinitionError {
        file: file.to_path_buf(),
        key,
        message,
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| vec![err(None, format!("cannot read: {e}"))])?;
    let mut def: Definition = toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let key = e
            .message()
            .split('`')
            .nth(1)
            .filter(|_| {
                e.message().starts_with("unknown field") || e.message().starts_with("missing field")
            })
            .map(str::to_string);
        let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
        vec![err(key, format!("{}{at}", e.message().trim()))]
    })?;
    def.file = file.to_path_buf();
    if def.name.is_empty() {
        def.name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    let problems = def.problems();
    if problems.is_empty() {
        Ok(def)
    } else {
        Err(problems)
    }
}

/// `vigil connectors check`: every problem in every file of `dir`; empty
/// when all is well.
pub fn check_definitions(dir: &Path) -> Vec<DefinitionError> {
    match load_definitions(dir) {
        Ok(_) => Vec::new(),
        Err(e) => e,
    }
}
