//! Transport: cursor-paged JSON over HTTP (public security, spec §2).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::http::Fetched;

use super::errors::ConnectorError;
use super::pipeline::{Pipeline, Raw};
use super::{Ctx, join};
use crate::store::deaths::Watermark;

/// One public-security page (spec §2).
#[derive(Deserialize)]
pub(super) struct Page {
    pub(super) records: Vec<Box<serde_json::value::RawValue>>,
    pub(super) next_cursor: Option<String>,
    pub(super) server_time: String,
}

/// The in-progress cursor, valid only with the `since` and `limit` it was
/// issued for.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
pub(super) struct CursorState {
    pub(super) since: String,
    pub(super) limit: u32,
    pub(super) cursor: String,
    /// `server_time` of the first page of this sequence: the next `since`
    /// once the sequence is complete.
    pub(super) server_time: String,
}

pub(super) const STATE_SINCE: &str = "since";
pub(super) const STATE_CURSOR: &str = "cursor";

pub(super) async fn pull_cursor(ctx: &mut Ctx<'_>) -> Result<(), ConnectorError> {
    let def = ctx.def;
    let paging = ctx.required(def.paging.as_ref(), "paging")?;
    let base = ctx.base_url()?;
    let mut fetcher = ctx.fetcher()?;
    let since = ctx
        .store
        .connector_state(&def.name, STATE_SINCE)
        .await?
        .unwrap_or_else(|| paging.initial_since.clone());
    let resume = ctx
        .store
        .connector_state(&def.name, STATE_CURSOR)
        .await?
        .and_then(|s| serde_json::from_str::<CursorState>(&s).ok())
        .filter(|c| c.since == since && c.limit == paging.limit);
    let (mut cursor, mut first_time) = match resume {
        Some(c) => (Some(c.cursor), Some(c.server_time)),
        None => (None, None),
    };
    let endpoint = join(&base, &paging.path);
    let mut pipe = Pipeline::default();
    loop {
        let mut url = endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("since", &since);
            q.append_pair("limit", &paging.limit.to_string());
            if let Some(c) = &cursor {
                q.append_pair("cursor", c);
            }
        }
        // The next page is fetched while the previous one commits.
        let fetch = fetcher.get(&url, None, |b| {
            let page: Page = serde_json::from_slice(b)
                .map_err(|e| format!("the page does not parse (cut off?): {e}"))?;
            chrono::DateTime::parse_from_rfc3339(&page.server_time)
                .map_err(|_| "server_time is not an RFC 3339 instant".to_string())?;
            Ok(page)
        });
        let (fetched, committed) = tokio::join!(fetch, pipe.finish(ctx));
        ctx.counts.retries = fetcher.retries;
        committed?;
        // On failure, what was fetched whole before it is committed above.
        let fetched = fetched?;
        let Fetched::Body(page) = fetched else {
            continue;
        };
        let first_time = first_time
            .get_or_insert_with(|| page.server_time.clone())
            .clone();
        ctx.counts.pages += 1;
        let origin = match &cursor {
            Some(c) => format!("since={since} cursor={c}"),
            None => format!("since={since}"),
        };
        let raws: Vec<Raw> = page
            .records
            .into_iter()
            .map(|r| Raw::Json(String::from(Box::<str>::from(r)), None))
            .collect();
        let job = ctx.work(&origin, Arc::default()).spawn(raws);
        let watermarks = match &page.next_cursor {
            Some(next) => vec![Watermark::Set {
                name: STATE_CURSOR.into(),
                value: serde_json::to_string(&CursorState {
                    since: since.clone(),
                    limit: paging.limit,
                    cursor: next.clone(),
                    server_time: first_time.clone(),
                })
                .expect("plain strings serialise"),
            }],
            None => vec![
                Watermark::Set {
                    name: STATE_SINCE.into(),
                    value: first_time.clone(),
                },
                Watermark::Clear {
                    name: STATE_CURSOR.into(),
                },
            ],
        };
        pipe.push(ctx, job, watermarks).await?;
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pipe.finish(ctx).await,
        }
    }
}
