//! HTTP for the connectors: one client per source on rustls, and a fetch
//! that retries what is worth retrying (timeouts, resets, 5xx, 429, a body
//! that does not parse) with exponential backoff and jitter, honours
//! `Retry-After`, and gives up after a bounded number of attempts.
//!
//! It never logs a token or a URL's query values beyond the path, and never
//! retries 401/403: a wrong token does not become right by asking again.

use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, IF_NONE_MATCH, RETRY_AFTER};

use super::ConnectorError;
use super::definition::{Definition, HttpPolicy, Secret};

/// rustls needs a process-wide crypto provider; reqwest is built without
/// one (to keep aws-lc out), so ring, which sqlx already links, is used.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) struct Fetcher {
    client: reqwest::Client,
    token: Option<Secret>,
    policy: HttpPolicy,
    source: String,
    /// Retries made so far (all requests of the run).
    pub retries: u64,
}

pub(crate) enum Fetched<T> {
    Body(T),
    NotModified,
}

impl Fetcher {
    pub fn new(def: &Definition, token: Option<Secret>) -> Result<Fetcher, ConnectorError> {
        install_crypto_provider();
        let client = reqwest::Client::builder()
            .connect_timeout(def.http.connect_timeout())
            .timeout(def.http.timeout())
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ConnectorError::Client {
                source_name: def.name.clone(),
                message: e.to_string(),
            })?;
        Ok(Fetcher {
            client,
            token,
            policy: def.http.clone(),
            source: def.name.clone(),
            retries: 0,
        })
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .policy
            .base_delay_ms
            .saturating_mul(1u64 << (attempt.saturating_sub(1)).min(20))
            .min(self.policy.max_delay_ms);
        // Half fixed, half random: spreads clients apart without ever
        // retrying at once.
        let jitter = rand::rng().random_range(0..=exp / 2);
        Duration::from_millis(exp / 2 + jitter)
    }

    /// GETs `url`, retrying until `accept` takes the body (and turns it
    /// into what the caller keeps). `etag` is sent as
    /// `If-None-Match`; a 304 gives [`Fetched::NotModified`].
    pub async fn get<T>(
        &mut self,
        url: &reqwest::Url,
        etag: Option<&str>,
        accept: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Fetched<T>, ConnectorError> {
        let mut last = String::new();
        let what = url.path().to_string();
        for attempt in 1..=self.policy.max_attempts {
            if attempt > 1 {
                self.retries += 1;
            }
            let mut req = self.client.get(url.clone());
            if let Some(token) = &self.token {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| ConnectorError::Client {
                        source_name: self.source.clone(),
                        message: "the token holds characters not allowed in a header".into(),
                    })?;
                value.set_sensitive(true);
                req = req.header(AUTHORIZATION, value);
            }
            if let Some(tag) = etag
                && let Ok(v) = HeaderValue::from_str(&format!("\"{tag}\""))
            {
                req = req.header(IF_NONE_MATCH, v);
            }
            let delay = match req.send().await {
                Err(e) => {
                    last = describe(&e);
                    self.backoff(attempt)
                }
                Ok(resp) => {
                    let status = resp.status();
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        return Err(ConnectorError::Unauthorized {
                            source_name: self.source.clone(),
                            status: status.as_u16(),
                        });
                    }
                    if status == StatusCode::NOT_MODIFIED {
                        return Ok(Fetched::NotModified);
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        last = "429 Too Many Requests".into();
                        match retry_after(resp.headers().get(RETRY_AFTER)) {
                            Some(d) => d.min(Duration::from_millis(self.policy.max_retry_after_ms)),
                            None => self.backoff(attempt),
                        }
                    } else if status.is_server_error() {
                        last = format!("HTTP {status}");
                        self.backoff(attempt)
                    } else if !status.is_success() {
                        return Err(ConnectorError::Refused {
                            source_name: self.source.clone(),
                            what,
                            status: status.as_u16(),
                        });
                    } else {
                        match resp.bytes().await {
                            Err(e) => {
                                last = describe(&e);
                                self.backoff(attempt)
                            }
                            Ok(bytes) => match accept(&bytes) {
                                Ok(value) => return Ok(Fetched::Body(value)),
                                Err(m) => {
                                    last = m;
                                    self.backoff(attempt)
                                }
                            },
                        }
                    }
                }
            };
            tracing::warn!(
                source = %self.source, path = %what, attempt, error = %last,
                "request failed; retrying"
            );
            if attempt < self.policy.max_attempts {
                tokio::time::sleep(delay).await;
            }
        }
        Err(ConnectorError::GaveUp {
            source_name: self.source.clone(),
            what,
            attempts: self.policy.max_attempts,
            last,
        })
    }
}

/// `Retry-After` as delay-seconds or as an HTTP-date (RFC 9110 §10.2.3);
/// a date in the past means "now".
fn retry_after(v: Option<&HeaderValue>) -> Option<Duration> {
    retry_after_at(v?.to_str().ok()?, chrono::Utc::now())
}

fn retry_after_at(text: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate, e.g. `Wed, 21 Oct 2026 07:28:00 GMT`.
    let at = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// A transport error in words, without the URL (which may carry a cursor).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut off"
    } else if e.is_request() {
        "the connection failed"
    } else {
        "transport error"
    };
    let mut chain = String::new();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        chain = s.to_string();
        src = s.source();
    }
    if chain.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {chain}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-26T07:28:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(retry_after_at(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after_at("Thu, 26 Nov 2026 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_at("Thu, 26 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_at("soon", now), None);
    }
}
