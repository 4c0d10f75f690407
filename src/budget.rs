//! A group's send budget: token buckets for datagrams and bytes per second, each
//! holding one second's worth, refilled continuously. Hosts that run untrusted code
//! (scriptling's sandbox) hold a flood to the rate they allow.

use std::time::Instant;

use crate::error::{Error, ErrorKind, Result};

#[derive(Debug)]
pub(crate) struct Budget {
    datagrams: Option<Bucket>,
    bytes: Option<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    per_second: f64,
    tokens: f64,
    refilled: Instant,
}

impl Bucket {
    fn new(per_second: u32, now: Instant) -> Option<Bucket> {
        (per_second > 0).then(|| Bucket {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            refilled: now,
        })
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second);
        self.refilled = now;
    }
}

impl Budget {
    /// None when neither limit is set: sends then never consult a budget.
    pub(crate) fn new(datagrams_per_second: u32, bytes_per_second: u32) -> Option<Budget> {
        let now = Instant::now();
        let budget = Budget {
            datagrams: Bucket::new(datagrams_per_second, now),
            bytes: Bucket::new(bytes_per_second, now),
        };
        (budget.datagrams.is_some() || budget.bytes.is_some()).then_some(budget)
    }

    /// How many of `sizes` (in order) the budget allows now; takes their tokens. Fails,
    /// taking nothing, when it allows none.
    pub(crate) fn take(
        &mut self,
        sizes: impl IntoIterator<Item = usize>,
        now: Instant,
    ) -> Result<usize> {
        for bucket in [&mut self.datagrams, &mut self.bytes].into_iter().flatten() {
            bucket.refill(now);
        }
        let mut allowed = 0;
        let mut first_refused = None;
        for size in sizes {
            let fits_datagrams = self.datagrams.as_ref().is_none_or(|b| b.tokens >= 1.0);
            let fits_bytes = self.bytes.as_ref().is_none_or(|b| b.tokens >= size as f64);
            if !(fits_datagrams && fits_bytes) {
                first_refused = Some((fits_datagrams, size));
                break;
            }
            if let Some(b) = &mut self.datagrams {
                b.tokens -= 1.0;
            }
            if let Some(b) = &mut self.bytes {
                b.tokens -= size as f64;
            }
            allowed += 1;
        }
        match (allowed, first_refused) {
            (0, Some((fits_datagrams, size))) => Err(self.refusal(fits_datagrams, size)),
            _ => Ok(allowed),
        }
    }

    fn refusal(&self, fits_datagrams: bool, size: usize) -> Error {
        let message = match (&self.datagrams, &self.bytes) {
            (Some(b), _) if !fits_datagrams => format!(
                "send failed: over the send limit of {} datagrams per second; nothing sent",
                b.per_second
            ),
            (_, Some(b)) if size as f64 > b.per_second => format!(
                "send failed: a message of {size} bytes is larger than the send limit of {} bytes per second; nothing sent",
                b.per_second
            ),
            (_, Some(b)) => format!(
                "send failed: over the send limit of {} bytes per second; nothing sent",
                b.per_second
            ),
            _ => "send failed: over the send limit; nothing sent".to_owned(),
        };
        Error::new(ErrorKind::RateLimited, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_limits_no_budget() {
        assert!(Budget::new(0, 0).is_none());
    }

    #[test]
    fn datagrams_per_second_hold_a_flood() {
        let start = Instant::now();
        let mut b = Budget::new(10, 0).unwrap();
        // One second's worth at once, then nothing, then a tenth of a second's refill.
        assert_eq!(b.take([1; 15], start).unwrap(), 10);
        let e = b.take([1], start).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert!(e.message().contains("10 datagrams per second"), "{e}");
        assert_eq!(
            b.take([1; 5], start + Duration::from_millis(100)).unwrap(),
            1
        );
        // A long pause refills one second's worth, never more.
        assert_eq!(
            b.take([1; 50], start + Duration::from_secs(60)).unwrap(),
            10
        );
    }

    #[test]
    fn bytes_per_second() {
        let start = Instant::now();
        let mut b = Budget::new(0, 1000).unwrap();
        assert_eq!(b.take([400, 400, 400], start).unwrap(), 2);
        let e = b.take([400], start).unwrap_err();
        assert!(e.message().contains("1000 bytes per second"), "{e}");
        let e = b.take([5000], start + Duration::from_secs(9)).unwrap_err();
        assert!(e.message().contains("larger than the send limit"), "{e}");
        assert_eq!(b.take([1000], start + Duration::from_secs(9)).unwrap(), 1);
    }
}
