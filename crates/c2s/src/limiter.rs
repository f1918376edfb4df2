//! A per-connection read-rate limiter (token bucket). When the bucket is empty the session stops
//! reading from the socket until it refills: the peer is slowed down by TCP flow control and no
//! data is dropped.

use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug)]
pub struct RateLimiter {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    pub fn new(rate: u64, burst: Duration) -> Self {
        let capacity = (rate as f64 * burst.as_secs_f64()).max(rate as f64);
        RateLimiter {
            rate,
            capacity,
            tokens: capacity,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.capacity);
    }

    /// How many bytes may be read now (at most `max`); 0 means wait for [`Self::wait_time`].
    pub fn allowance(&mut self, max: usize) -> usize {
        if self.rate == 0 {
            return max;
        }
        self.refill(Instant::now());
        (self.tokens.max(0.0) as usize).min(max)
    }

    /// Records bytes read.
    pub fn consume(&mut self, n: usize) {
        if self.rate != 0 {
            self.tokens -= n as f64;
        }
    }

    /// How long until at least one kilobyte (or the whole bucket, if smaller) is available.
    pub fn wait_time(&mut self) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        self.refill(Instant::now());
        let want = self.capacity.min(1024.0);
        if self.tokens >= want {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((want - self.tokens) / self.rate as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_at_the_rate() {
        let mut l = RateLimiter::new(1000, Duration::from_secs(2));
        assert_eq!(l.allowance(10_000), 2000);
        l.consume(2000);
        assert_eq!(l.allowance(10_000), 0);
        // Waits until a kilobyte is back.
        assert_eq!(l.wait_time(), Duration::from_millis(1024));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(l.allowance(10_000), 500);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(l.allowance(10_000), 2000, "capped at the burst");
        let mut unlimited = RateLimiter::new(0, Duration::from_secs(2));
        unlimited.consume(1 << 30);
        assert_eq!(unlimited.allowance(4096), 4096);
        assert_eq!(unlimited.wait_time(), Duration::ZERO);
    }
}
