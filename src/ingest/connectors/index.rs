//! Transport: an HTTP index of JSON Lines files (funeral homes, spec §4).

use std::sync::Arc;

use super::http::Fetched;
use super::normalise::sha256_hex;

use super::errors::ConnectorError;
use super::pipeline::{Pipeline, Raw, take_raws};
use super::{Ctx, join};

/// A name from the funeral index must stay below the platform's prefix.
pub(super) fn safe_relative(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains("://")
        && !name
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
}

pub(super) async fn pull_index(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let index_path = ctx.required(def.files.index.as_deref(), "files.index")?;
    let prefix = match &def.files.prefix {
        Some(p) => p.clone(),
        None => index_path
            .rsplit_once('/')
            .map(|(d, _)| format!("{d}/"))
            .unwrap_or_default(),
    };
    let base = ctx.base_url()?;
    let mut fetcher = ctx.fetcher()?;
    // One pipeline across files: a file is normalised while the previous
    // one commits.
    let mut pipe = Pipeline::default();
    let index_url = join(&base, index_path);
    let fetched = fetcher
        .get(&index_url, None, |b| {
            serde_json::from_slice::<Vec<String>>(b)
                .map_err(|e| format!("the index is not a JSON list of names (cut off?): {e}"))
        })
        .await;
    ctx.counts.retries = fetcher.retries;
    let Fetched::Body(mut names) = fetched? else {
        return Ok(());
    };
    names.sort();
    names.dedup();
    let taken = ctx.store.taken_files(&def.name).await?;
    for name in names {
        if !safe_relative(&name) {
            ctx.counts.errors += 1;
            tracing::warn!(source = %def.name, name = %name, "index entry refused: not a plain relative path");
            continue;
        }
        let url = join(&base, &format!("{prefix}{name}"));
        let old = taken.get(&name).map(String::as_str);
        let fetched = fetcher
            .get(&url, old, |b| {
                if b.is_empty() || b.ends_with(b"\n") {
                    Ok(b.to_vec())
                } else {
                    Err("the file is cut off: it does not end with a newline".into())
                }
            })
            .await;
        ctx.counts.retries = fetcher.retries;
        let bytes = match fetched? {
            Fetched::NotModified => {
                ctx.counts.files_unchanged += 1;
                continue;
            }
            Fetched::Body(bytes) => bytes,
        };
        let sha = sha256_hex(&bytes);
        if old == Some(sha.as_str()) {
            ctx.counts.files_unchanged += 1;
            continue;
        }
        take_jsonl(ctx, &mut pipe, &name, &bytes, sha).await?;
    }
    pipe.finish(ctx).await?;
    Ok(())
}

/// Stores one JSON Lines file; the last batch marks it taken.
pub(super) async fn take_jsonl(
    ctx: &mut Ctx<'_>,
    pipe: &mut Pipeline,
    name: &str,
    bytes: &[u8],
    sha: String,
) -> Result<(), ConnectorError> {
    let text = String::from_utf8_lossy(bytes);
    let raws: Vec<Raw> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Raw::Json(l.to_string(), Some(i as u64 + 1)))
        .collect();
    let records = raws.len() as u64;
    take_raws(ctx, pipe, name, raws, Arc::default(), sha, records).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn index_names_may_not_escape_the_platform_directory() {
        assert!(safe_relative("FH440300-07/2026-11-25.jsonl"));
        for bad in ["../etc/passwd", "/abs", "a//b", "http://x/y", "a/./b", ""] {
            assert!(!safe_relative(bad), "{bad}");
        }
    }
}
