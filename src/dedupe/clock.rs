//! Deadlines from durations a user sets, which may be as long as `Duration::MAX`:
//! `Instant + Duration` panics when the sum does not fit.

use std::time::Duration;

use tokio::time::Instant;

/// The longest span a deadline or an expiry is set at: about thirty years, past any
/// TTL or wait that matters, and short enough to add to the clock without overflow.
pub(super) const LONGEST: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);

/// `now + span`, with `span` cut to [`LONGEST`]: never panics.
pub(super) fn after(now: Instant, span: Duration) -> Instant {
    now.checked_add(span.min(LONGEST)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_spans_saturate() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + LONGEST);
        assert_eq!(after(now, LONGEST + Duration::from_nanos(1)), now + LONGEST);
    }
}
