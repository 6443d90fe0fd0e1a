//! A simulated source server: the public-security deregistration API and the
//! funeral platform's index and files, served over plain HTTP on loopback
//! from a `vigil generate` output directory (or the fixtures), with faults
//! that can be injected on demand.
//!
//! For tests, the demo and benchmarks only: it speaks just enough HTTP/1.1
//! for one GET per connection, holds the public-security records in memory,
//! and reads funeral files from disk on every request (so a test can
//! "re-post" a file by rewriting it). It never serves anything outside the
//! directory it was given.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::normalise::sha256_hex;

/// Where the generator puts each source (see `generate::sources`).
pub const PUBLIC_SECURITY_FILE: &str = "public_security/records.jsonl";
pub const FUNERAL_DIR: &str = "funeral/cremations";
pub const DEREGISTRATIONS_PATH: &str = "/api/v1/deregistrations";
pub const FUNERAL_PREFIX: &str = "/cremations/";

/// A fault to apply to one coming data request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a short JSON error.
    Status(u16),
    /// 429 with `Retry-After: secs`.
    TooManyRequests { retry_after_secs: u64 },
    /// A 200 whose body stops half way (with a matching Content-Length, so
    /// only the parser can tell).
    CutBody,
    /// Close the connection without answering.
    Drop,
    /// Public security: send the previous page again instead of this one.
    RepeatPrevious,
}

#[derive(Debug)]
struct PsRecord {
    zxrq: NaiveDate,
    start: usize,
    end: usize,
}

/// What the server serves and how it misbehaves.
#[derive(Debug)]
pub struct Sim {
    ps_text: String,
    ps: Vec<PsRecord>,
    funeral_dir: Option<PathBuf>,
    token: Option<String>,
    /// One entry per coming data request: `None` serves it normally.
    faults: Mutex<VecDeque<Option<Fault>>>,
    /// After this many public-security pages, every connection is dropped.
    drop_after_pages: Mutex<Option<u64>>,
    now: Mutex<Option<DateTime<Utc>>>,
    last_page: Mutex<Option<Vec<u8>>>,
    pages_served: AtomicU64,
    requests: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} line {line}: no valid zxrq date; fix the file or regenerate it")]
    BadRecord { path: PathBuf, line: usize },
}

#[derive(serde::Deserialize)]
struct Zxrq<'a> {
    #[serde(borrow)]
    zxrq: std::borrow::Cow<'a, str>,
}

impl Sim {
    /// Loads `data_dir` laid out as `vigil generate` writes it: either
    /// source may be absent. `token`, when given, is the only bearer token
    /// accepted.
    pub fn load(data_dir: &Path, token: Option<&str>) -> Result<Sim, SimError> {
        let ps_path = data_dir.join(PUBLIC_SECURITY_FILE);
        let ps_text = match std::fs::read_to_string(&ps_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => {
                return Err(SimError::Read {
                    path: ps_path,
                    error,
                });
            }
        };
        let mut ps = Vec::new();
        let mut start = 0;
        for (i, line) in ps_text.split_inclusive('\n').enumerate() {
            let end = start + line.trim_end_matches(['\r', '\n']).len();
            if !line.trim().is_empty() {
                let zxrq = serde_json::from_str::<Zxrq>(&ps_text[start..end])
                    .ok()
                    .and_then(|z| NaiveDate::parse_from_str(&z.zxrq, "%Y-%m-%d").ok())
                    .ok_or_else(|| SimError::BadRecord {
                        path: ps_path.clone(),
                        line: i + 1,
                    })?;
                ps.push(PsRecord { zxrq, start, end });
            }
            start += line.len();
        }
        // The API hands records out in cancellation order.
        ps.sort_by_key(|r| r.zxrq);
        let funeral = data_dir.join(FUNERAL_DIR);
        Ok(Sim {
            ps_text,
            ps,
            funeral_dir: funeral.is_dir().then_some(funeral),
            token: token.map(str::to_string),
            faults: Mutex::new(VecDeque::new()),
            drop_after_pages: Mutex::new(None),
            now: Mutex::new(None),
            last_page: Mutex::new(None),
            pages_served: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Queues a fault for the next data request (faults apply in order).
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().expect("lock").push_back(Some(fault));
    }

    /// Queues a fault for the data request after the next `skip` ones
    /// (counted after any faults already queued).
    pub fn inject_after(&self, skip: usize, fault: Fault) {
        let mut q = self.faults.lock().expect("lock");
        q.extend(std::iter::repeat_n(None, skip));
        q.push_back(Some(fault));
    }

    /// Drops every connection once `pages` pages have been served in total;
    /// `None` heals the server.
    pub fn drop_after_pages(&self, pages: Option<u64>) {
        *self.drop_after_pages.lock().expect("lock") = pages;
    }

    /// The server's clock: records cancelled after this day (China time) are
    /// not visible yet, and it is the `server_time` answered. `None` (the
    /// default): everything is visible and the clock is the real one.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        *self.now.lock().expect("lock") = now;
    }

    pub fn pages_served(&self) -> u64 {
        self.pages_served.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every public-security record line, in file order.
    pub fn public_security_lines(&self) -> Vec<&str> {
        let mut v: Vec<&PsRecord> = self.ps.iter().collect();
        v.sort_by_key(|r| r.start);
        v.into_iter()
            .map(|r| &self.ps_text[r.start..r.end])
            .collect()
    }

    fn respond(&self, req: &Request) -> Response {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(n) = *self.drop_after_pages.lock().expect("lock")
            && self.pages_served() >= n
        {
            return Response::Drop;
        }
        if let Some(token) = &self.token
            && req.authorization.as_deref() != Some(&format!("Bearer {token}"))
        {
            return json_error(401, "missing or wrong bearer token");
        }
        let fault = self.faults.lock().expect("lock").pop_front().flatten();
        match fault {
            Some(Fault::Status(code)) => return json_error(code, "injected failure"),
            Some(Fault::TooManyRequests { retry_after_secs }) => {
                let mut r = json_error(429, "slow down");
                if let Response::Full { headers, .. } = &mut r {
                    headers.push(format!("Retry-After: {retry_after_secs}"));
                }
                return r;
            }
            Some(Fault::Drop) => return Response::Drop,
            Some(Fault::RepeatPrevious) if req.path == DEREGISTRATIONS_PATH => {
                if let Some(body) = self.last_page.lock().expect("lock").clone() {
                    return ok_json(body);
                }
            }
            _ => {}
        }
        let mut resp = if req.path == DEREGISTRATIONS_PATH {
            self.page(&req.query)
        } else if let Some(rel) = req.path.strip_prefix(FUNERAL_PREFIX) {
            self.funeral(rel, req.if_none_match.as_deref())
        } else {
            json_error(404, "no such path")
        };
        if fault == Some(Fault::CutBody)
            && let Response::Full { body, .. } = &mut resp
        {
            body.truncate(body.len() / 2);
        }
        resp
    }

    fn page(&self, query: &str) -> Response {
        let mut since = None;
        let mut limit = None;
        let mut cursor = None;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "since" => since = Some(v.into_owned()),
                "limit" => limit = v.parse::<usize>().ok(),
                "cursor" => cursor = Some(v.into_owned()),
                _ => {}
            }
        }
        let Some(since) = since.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()) else {
            return json_error(400, "since must be an RFC 3339 instant");
        };
        let limit = match limit {
            Some(l) if (1..=1000).contains(&l) => l,
            _ => return json_error(400, "limit must be 1 to 1000"),
        };
        let since_day = (since.with_timezone(&Utc) + chrono::Duration::hours(8)).date_naive();
        let now = *self.now.lock().expect("lock");
        let until_day = now.map(|n| (n + chrono::Duration::hours(8)).date_naive());
        let lo = self.ps.partition_point(|r| r.zxrq < since_day);
        let hi = match until_day {
            Some(d) => self.ps.partition_point(|r| r.zxrq <= d),
            None => self.ps.len(),
        };
        // A cursor is the offset, bound to the since and limit it came with.
        let offset = match cursor {
            None => 0,
            Some(c) => {
                let parts: Vec<&str> = c.split('.').collect();
                match parts.as_slice() {
                    [o, d, l] if *d == since_day.to_string() && *l == limit.to_string() => {
                        match o.parse::<usize>() {
                            Ok(o) => o,
                            Err(_) => return json_error(400, "bad cursor"),
                        }
                    }
                    _ => return json_error(400, "the cursor belongs to another since or limit"),
                }
            }
        };
        let from = (lo + offset).min(hi.max(lo));
        let to = (from + limit).min(hi.max(lo));
        let mut body = Vec::with_capacity((to - from) * 240 + 128);
        body.extend_from_slice(b"{\"records\":[");
        for (i, r) in self.ps[from..to].iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&self.ps_text.as_bytes()[r.start..r.end]);
        }
        body.extend_from_slice(b"],\"next_cursor\":");
        if to < hi {
            body.extend_from_slice(format!("\"{}.{}.{}\"", to - lo, since_day, limit).as_bytes());
        } else {
            body.extend_from_slice(b"null");
        }
        let server_time = now.unwrap_or_else(Utc::now).format("%Y-%m-%dT%H:%M:%SZ");
        body.extend_from_slice(format!(",\"server_time\":\"{server_time}\"}}").as_bytes());
        self.pages_served.fetch_add(1, Ordering::Relaxed);
        *self.last_page.lock().expect("lock") = Some(body.clone());
        ok_json(body)
    }

    fn funeral(&self, rel: &str, if_none_match: Option<&str>) -> Response {
        let Some(dir) = &self.funeral_dir else {
            return json_error(404, "no funeral data");
        };
        let decoded = url::form_urlencoded::parse(format!("p={rel}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if decoded.split('/').any(|p| p == ".." || p.is_empty()) || decoded.contains('\\') {
            return json_error(404, "no such file");
        }
        let path = dir.join(&decoded);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let tag = sha256_hex(&bytes);
                if if_none_match.map(|t| t.trim_matches('"')) == Some(tag.as_str()) {
                    return Response::Full {
                        status: 304,
                        headers: vec![format!("ETag: \"{tag}\"")],
                        body: Vec::new(),
                    };
                }
                let ctype = if decoded.ends_with(".json") {
                    "application/json"
                } else {
                    "application/x-ndjson"
                };
                Response::Full {
                    status: 200,
                    headers: vec![format!("Content-Type: {ctype}"), format!("ETag: \"{tag}\"")],
                    body: bytes,
                }
            }
            Err(_) => json_error(404, "no such file"),
        }
    }
}

enum Response {
    Full {
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
    },
    Drop,
}

fn ok_json(body: Vec<u8>) -> Response {
    Response::Full {
        status: 200,
        headers: vec!["Content-Type: application/json".into()],
        body,
    }
}

fn json_error(status: u16, message: &str) -> Response {
    Response::Full {
        status,
        headers: vec!["Content-Type: application/json".into()],
        body: format!("{{\"error\":\"{message}\"}}").into_bytes(),
    }
}

struct Request {
    path: String,
    query: String,
    authorization: Option<String>,
    if_none_match: Option<String>,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() > 16 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (_method, target) = (first.next()?, first.next()?);
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        path: path.to_string(),
        query: query.to_string(),
        authorization: None,
        if_none_match: None,
    };
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim().to_string();
            if k.eq_ignore_ascii_case("authorization") {
                req.authorization = Some(v);
            } else if k.eq_ignore_ascii_case("if-none-match") {
                req.if_none_match = Some(v);
            }
        }
    }
    Some(req)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn handle(sim: Arc<Sim>, mut stream: TcpStream) {
    let Some(req) = read_request(&mut stream).await else {
        return;
    };
    match sim.respond(&req) {
        Response::Drop => {}
        Response::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(status),
                body.len()
            );
            for h in headers {
                head.push_str(&h);
                head.push_str("\r\n");
            }
            head.push_str("\r\n");
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
            let _ = stream.shutdown().await;
        }
    }
}

/// Serves `sim` on `listener` until `shutdown` completes. Bind
/// `127.0.0.1:0` and read the port from the listener.
pub async fn serve(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(sim.clone(), stream));
            }
        }
    }
}

/// A server running in the background on a free loopback port.
pub struct RunningSim {
    pub sim: Arc<Sim>,
    /// `http://127.0.0.1:PORT`
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningSim {
    /// Starts `sim` on 127.0.0.1 with a port the system picks.
    pub async fn start(sim: Sim) -> std::io::Result<RunningSim> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let sim = Arc::new(sim);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, sim.clone(), async move {
            let _ = rx.await;
        }));
        Ok(RunningSim {
            sim,
            base_url: format!("http://{addr}"),
            stop: Some(tx),
            task,
        })
    }

    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.unwrap_or(Ok(()))
    }
}

/// Why [`pull_through_sim`] could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimPullError {
    #[error(transparent)]
    Load(#[from] SimError),
    #[error("cannot start the simulated source server on 127.0.0.1: {0}")]
    Start(std::io::Error),
    #[error(transparent)]
    Pull(#[from] super::PullError),
}

/// `defs` pointed at a simulated server and at a `vigil generate` output
/// directory: HTTP sources at `base_url` with `token`, directory sources at
/// `data_dir/<the last component of their dir>` (`civil_affairs`).
pub fn point_at(
    defs: &[super::Definition],
    base_url: &str,
    data_dir: &Path,
    token: &str,
) -> Vec<super::Definition> {
    defs.iter()
        .map(|d| {
            let d = d.clone().with_token(super::Secret::new(token));
            match d.kind {
                super::TransportKind::CsvDir => {
                    let leaf = d
                        .dir
                        .as_ref()
                        .and_then(|p| p.file_name())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("civil_affairs"));
                    d.with_dir(data_dir.join(leaf))
                }
                _ => d.with_base_url(base_url),
            }
        })
        .collect()
}

/// The demo's and the benchmark's pull: serves `data_dir` (laid out as
/// `vigil generate` writes it) on a loopback port with a one-off token,
/// pulls the sources of `defs` named in `only` (all when empty) through the
/// real connectors, and stops the server.
pub async fn pull_through_sim(
    store: &crate::store::Store,
    defs: &[super::Definition],
    only: &[String],
    data_dir: &Path,
    progress: &(dyn Fn(&super::PullProgress<'_>) + Sync),
) -> Result<Vec<super::PullSummary>, SimPullError> {
    let token = format!("sim-{:016x}", rand::random::<u64>());
    let sim = Sim::load(data_dir, Some(&token))?;
    let running = RunningSim::start(sim).await.map_err(SimPullError::Start)?;
    let defs = point_at(defs, &running.base_url, data_dir, &token);
    let result = super::pull(store, &defs, only, progress).await;
    let _ = running.stop().await;
    Ok(result?)
}
