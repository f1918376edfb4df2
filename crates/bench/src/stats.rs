//! Latency percentiles from exact samples (nanoseconds) or from a fixed-size histogram, for
//! counts too large to keep every sample.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (nanoseconds); all zero when empty.
    pub fn of(mut samples: Vec<u64>) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let n = samples.len();
        // Nearest rank: the smallest value with at least q·n samples at or below it.
        let rank = |q: f64| {
            let r = (q * n as f64).ceil() as usize;
            Duration::from_nanos(samples[r.clamp(1, n) - 1])
        };
        Percentiles {
            count: n,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: Duration::from_nanos(samples[n - 1]),
        }
    }
}

/// Sub-buckets per power of two, as a power of two: 2^5 = 32, so a bucket is at most 1/32
/// (3.1%) wide relative to its values.
const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
/// Values below this are counted exactly (one bucket each).
const EXACT: u64 = 2 * SUB as u64;
/// Buckets for every u64: the 64 exact ones, then 32 per power of two from 2^6 to 2^63.
const BUCKETS: usize = (65 - SUB_BITS as usize) * SUB;

/// Latencies (nanoseconds) counted in log-linear buckets: constant memory (1,920 counters) however
/// many samples, percentiles within 3.1% above the exact value (a bucket reports its highest
/// value, so a percentile is never understated), the maximum exact. Shared between tasks:
/// recording is one relaxed atomic add.
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// The bucket of a value: values below [`EXACT`] are their own bucket; above, the bucket is
    /// given by the position of the highest set bit and the next five bits.
    fn bucket(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let e = 63 - v.leading_zeros();
        (e - SUB_BITS) as usize * SUB + (v >> (e - SUB_BITS)) as usize
    }

    /// The highest value that falls in bucket `i`.
    fn highest(i: usize) -> u64 {
        if (i as u64) < EXACT {
            return i as u64;
        }
        let shift = (i / SUB - 1) as u32;
        let top = (i % SUB + SUB) as u64;
        ((top + 1) << shift).wrapping_sub(1)
    }

    pub fn record(&self, ns: u64) {
        self.buckets[Self::bucket(ns)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// Nearest-rank percentiles, each the highest value of the bucket that holds that rank
    /// (capped by the exact maximum); all zero when empty.
    pub fn percentiles(&self) -> Percentiles {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let n: u64 = counts.iter().sum();
        if n == 0 {
            return Percentiles::default();
        }
        let max = self.max.load(Ordering::Relaxed);
        let rank = |q: f64| {
            let r = ((q * n as f64).ceil() as u64).clamp(1, n);
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= r {
                    return Duration::from_nanos(Self::highest(i).min(max));
                }
            }
            Duration::from_nanos(max)
        };
        Percentiles {
            count: n as usize,
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            p999: rank(0.999),
            max: Duration::from_nanos(max),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms ({} samples)",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // 1..=1000 µs, shuffled by reversal.
        let samples: Vec<u64> = (1..=1000u64).rev().map(|us| us * 1000).collect();
        let p = Percentiles::of(samples);
        assert_eq!(p.count, 1000);
        assert_eq!(p.p50, Duration::from_micros(500));
        assert_eq!(p.p90, Duration::from_micros(900));
        assert_eq!(p.p99, Duration::from_micros(990));
        assert_eq!(p.p999, Duration::from_micros(999));
        assert_eq!(p.max, Duration::from_micros(1000));
    }

    #[test]
    fn one_sample_and_none() {
        let p = Percentiles::of(vec![7]);
        assert_eq!(
            (p.p50, p.p999, p.max),
            (
                Duration::from_nanos(7),
                Duration::from_nanos(7),
                Duration::from_nanos(7)
            )
        );
        assert_eq!(Percentiles::of(vec![]), Percentiles::default());
    }

    #[test]
    fn histogram_buckets_are_contiguous_and_narrow() {
        // Every bucket starts right after the previous one ends, and is at most 1/32 of its
        // values wide.
        let mut low = 0u64;
        for i in 0..BUCKETS {
            let high = Histogram::highest(i);
            assert_eq!(Histogram::bucket(low), i, "lowest value of bucket {i}");
            assert_eq!(Histogram::bucket(high), i, "highest value of bucket {i}");
            assert!((high - low) <= low / 32, "bucket {i}: {low}..={high}");
            low = high.wrapping_add(1);
        }
        assert_eq!(low, 0, "the last bucket ends at u64::MAX");
        assert_eq!(Histogram::bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn histogram_percentiles_are_close_and_never_low() {
        let h = Histogram::default();
        for us in (1..=1000u64).rev() {
            h.record(us * 1000);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 1000);
        for (got, exact) in [(p.p50, 500), (p.p90, 900), (p.p99, 990), (p.p999, 999)] {
            let exact = Duration::from_micros(exact);
            assert!(
                got >= exact && got <= exact.mul_f64(1.0 + 1.0 / 32.0),
                "{got:?} for {exact:?}"
            );
        }
        assert_eq!(p.max, Duration::from_micros(1000));
        // Small values are exact.
        let h = Histogram::default();
        h.record(7);
        assert_eq!(
            (h.percentiles().p50, h.count()),
            (Duration::from_nanos(7), 1)
        );
        assert_eq!(Histogram::default().percentiles(), Percentiles::default());
    }
}
