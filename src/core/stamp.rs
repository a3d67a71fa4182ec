//! Values for the `updated-at` and `force-sync` annotations.
//!
//! ESO re-syncs only when the hash of an object's labels and annotations changes, so two
//! patches must never write the same value: stamps have nanosecond precision and strictly
//! increase, even when the clock stands still or steps back.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

/// The annotations a refresh writes: who asked, and the stamp that makes ESO re-sync.
pub const UPDATED_BY: &str = "updated-by";
pub const UPDATED_BY_VALUE: &str = "externalsecret-updater";
pub const UPDATED_AT: &str = "updated-at";
/// On a ClusterExternalSecret, which copies it to every ExternalSecret it owns.
pub const FORCE_SYNC: &str = "external-secrets.io/force-sync";
/// On an ExternalSecret: marks of the events its last refreshes applied, newest first, so that
/// every replica (and a restarted one) can tell a re-delivery from its watch cache.
pub const APPLIED_EVENTS: &str = "eso-refresher/applied-events";
/// How many marks [`APPLIED_EVENTS`] keeps.
pub const APPLIED_EVENTS_KEPT: usize = 16;

#[derive(Default)]
pub struct Stamps {
    last_nanos: AtomicI64,
}

impl Stamps {
    /// An RFC 3339 UTC timestamp later than every one this instance gave before.
    pub fn next(&self) -> String {
        let now = Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let previous = self
            .last_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(now.max(last.saturating_add(1)))
            })
            .unwrap_or_else(|last| last);
        let nanos = now.max(previous.saturating_add(1));
        DateTime::from_timestamp_nanos(nanos).to_rfc3339_opts(SecondsFormat::Nanos, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Arc;

    #[test]
    fn stamps_are_rfc3339_with_nanoseconds() {
        let stamp = Stamps::default().next();
        let parsed = DateTime::parse_from_rfc3339(&stamp).expect("RFC 3339");
        assert!(stamp.ends_with('Z'));
        assert_eq!(
            stamp.split('.').nth(1).map(str::len),
            Some(10),
            "{stamp}: 9 digits + Z"
        );
        assert!(
            (Utc::now() - parsed.with_timezone(&Utc))
                .num_seconds()
                .abs()
                < 5
        );
    }

    #[test]
    fn stamps_never_repeat_across_threads() {
        let stamps = Arc::new(Stamps::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stamps = stamps.clone();
                std::thread::spawn(move || (0..5000).map(|_| stamps.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = HashSet::new();
        for thread in threads {
            for stamp in thread.join().unwrap() {
                assert!(seen.insert(stamp.clone()), "repeated {stamp}");
            }
        }
    }

    #[test]
    fn stamps_increase_even_if_the_clock_is_behind() {
        let stamps = Stamps::default();
        let future = Utc::now().timestamp_nanos_opt().unwrap() + 3_600_000_000_000;
        stamps.last_nanos.store(future, Ordering::Release);
        let a = stamps.next();
        let b = stamps.next();
        assert!(a < b, "{a} < {b}");
    }
}
