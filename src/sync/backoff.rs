//! Retry delays: exponential with full jitter, so that many operations failing together (the
//! server went away) do not come back in lockstep.

use std::time::Duration;

/// `base * 2^attempt`, capped at `max`, then a uniformly random point in its upper half.
pub fn delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX));
    let capped = exp.min(max);
    let half = capped / 2;
    let jitter_ms = half.as_millis() as u64;
    let extra = if jitter_ms == 0 {
        0
    } else {
        rand::random_range(0..=jitter_ms)
    };
    half + Duration::from_millis(extra)
}

pub fn as_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_capped_and_jitter() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 0..40 {
            let d = delay(attempt, base, max);
            assert!(d <= max, "{attempt}: {d:?}");
        }
        let first = delay(0, base, max);
        assert!(first >= Duration::from_millis(50) && first <= base);
        let late = delay(20, base, max);
        assert!(late >= max / 2);
        let samples: std::collections::HashSet<_> = (0..20).map(|_| delay(10, base, max)).collect();
        assert!(samples.len() > 1, "no jitter");
    }
}
