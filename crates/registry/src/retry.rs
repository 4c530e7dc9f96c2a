//! The one retry policy of every registry operation: how many attempts, how long to wait between
//! them, and which failures are worth another attempt.
//!
//! Retryable are server errors (5xx), `408`, `429`, connection resets and refusals, and
//! timeouts; a `Retry-After` the registry sends (seconds or an HTTP date) is honoured, capped at
//! [`RetryPolicy::max_retry_after`]. Everything else (auth, not found, bad content) fails at
//! once. Waits grow exponentially from [`RetryPolicy::initial_backoff`] to
//! [`RetryPolicy::max_backoff`], plus random jitter so parallel transfers do not retry in
//! lockstep.
//!
//! Callers with a plain operation use [`RetryPolicy::run`]; loops that must do more between
//! attempts (re-authenticate, resume at an offset) ask [`RetryPolicy::next_delay`].

use std::future::Future;
use std::time::{Duration, SystemTime};

/// Whether a failure may be retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Permanent: retrying cannot help.
    Never,
    /// Transient: retry after the policy's backoff.
    Backoff,
    /// Transient, and the server asked to wait this long (`Retry-After`).
    After(Duration),
}

/// Errors that know whether they are worth retrying.
pub trait Retryable {
    /// How this failure may be retried.
    fn retry(&self) -> Retry;
}

/// Exponential backoff with jitter for transient failures (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The wait before the second attempt; doubled after each failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts (before jitter).
    pub max_backoff: Duration,
    /// Random extra wait, in percent of the backoff (0 = none): up to 25 adds 0–25%.
    pub jitter_percent: u32,
    /// The longest `Retry-After` honoured; a server asking for more waits this long.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(8),
            jitter_percent: 25,
            max_retry_after: Duration::from_secs(32),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The backoff after failed attempt number `attempt` (1-based): `initial * 2^(attempt-1)`,
    /// capped at `max_backoff`, plus up to `jitter_percent` of it.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let jitter = base.mul_f64(f64::from(self.jitter_percent.min(100)) / 100.0);
        base + jitter.mul_f64(rand::random::<f64>())
    }

    /// True when another attempt is allowed after `attempt` failed attempts.
    pub fn should_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// How long to wait before the next attempt after failed attempt number `attempt`
    /// (1-based) failed as `retry` says, or `None` to give up.
    pub fn next_delay(&self, attempt: u32, retry: Retry) -> Option<Duration> {
        if !self.should_retry(attempt) {
            return None;
        }
        match retry {
            Retry::Never => None,
            Retry::Backoff => Some(self.backoff(attempt)),
            Retry::After(d) => Some(d.min(self.max_retry_after)),
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts run out. `on_retry` is
    /// told each retry (the failed attempt's number, its error, the wait) before the wait.
    pub async fn run<T, E, F, Fut>(
        &self,
        mut op: F,
        mut on_retry: impl FnMut(u32, &E, Duration),
    ) -> Result<T, E>
    where
        E: Retryable,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) => match self.next_delay(attempt, e.retry()) {
                    Some(wait) => {
                        on_retry(attempt, &e, wait);
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
            }
        }
    }
}

/// Parses a `Retry-After` header value: delay-seconds, or an HTTP date (a date in the past
/// means no wait). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// True for HTTP statuses worth retrying: 5xx, 408 and 429.
pub fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            jitter_percent: 25,
            max_retry_after: Duration::from_millis(3),
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jitter_stays_in_bounds() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..50 {
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(100) && b1 <= Duration::from_millis(125));
            let b3 = p.backoff(3);
            assert!(b3 >= Duration::from_millis(400) && b3 <= Duration::from_millis(500));
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_millis(1000) && b9 <= Duration::from_millis(1250));
        }
        let exact = RetryPolicy {
            jitter_percent: 0,
            ..p
        };
        assert_eq!(exact.backoff(2), Duration::from_millis(200));
        assert_eq!(exact.backoff(u32::MAX), Duration::from_millis(1000));
    }

    #[test]
    fn next_delay_honours_the_class_retry_after_and_the_attempt_budget() {
        let p = policy();
        assert_eq!(p.next_delay(1, Retry::Never), None);
        assert!(p.next_delay(1, Retry::Backoff).is_some());
        assert_eq!(
            p.next_delay(1, Retry::After(Duration::from_millis(2))),
            Some(Duration::from_millis(2))
        );
        // A server asking for an hour waits the cap.
        assert_eq!(
            p.next_delay(2, Retry::After(Duration::from_secs(3600))),
            Some(Duration::from_millis(3))
        );
        assert!(p.next_delay(3, Retry::Backoff).is_some());
        assert_eq!(p.next_delay(4, Retry::Backoff), None);
        assert_eq!(RetryPolicy::none().next_delay(1, Retry::Backoff), None);
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Tue, 01 Dec 2026 01:00:00 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 01:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Tue, 01 Dec 2026 00:59:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn statuses_worth_retrying() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 409, 416] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[derive(Debug)]
    struct E(Retry);
    impl Retryable for E {
        fn retry(&self) -> Retry {
            self.0
        }
    }

    #[tokio::test]
    async fn run_retries_transient_failures_until_success_or_budget() {
        let p = policy();
        let calls = AtomicU32::new(0);
        let mut seen = Vec::new();
        let out: Result<u32, E> = p
            .run(
                || async {
                    let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
                    if n < 3 {
                        Err(E(Retry::Backoff))
                    } else {
                        Ok(n)
                    }
                },
                |attempt, _, _| seen.push(attempt),
            )
            .await;
        assert_eq!(out.unwrap(), 3);
        assert_eq!(seen, vec![1, 2]);

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), E> = p
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(E(Retry::After(Duration::from_millis(1))))
                },
                |_, _, _| {},
            )
            .await;
        assert!(out.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "max_attempts in total");

        calls.store(0, Ordering::SeqCst);
        let out: Result<(), E> = p
            .run(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(E(Retry::Never))
                },
                |_, _, _| {},
            )
            .await;
        assert!(out.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "permanent failures are not retried"
        );
    }
}
