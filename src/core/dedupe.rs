//! Event ids already handled, remembered for a while, so that a re-delivered event does not
//! patch again. An id is remembered only once every refresh its event asked for was applied:
//! a delivery answered 503 is retried in full when it comes again.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ids kept at most; the oldest are forgotten first beyond that.
const MAX_REMEMBERED: usize = 100_000;
/// Longer ids are kept as their SHA-256, so a sender cannot make each entry large.
const MAX_ID_LENGTH: usize = 128;

fn bounded(id: &str) -> std::borrow::Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if id.len() <= MAX_ID_LENGTH {
        return id.into();
    }
    let digest = Sha256::digest(id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}").into()
}

/// The mark an applied event leaves on the objects it refreshed ([`APPLIED_EVENTS`]): 64 bits
/// of the SHA-256 of its key, as hex. Short, so that many fit in an annotation; a collision
/// (one in 2^64 per pair) would only skip one refresh.
///
/// [`APPLIED_EVENTS`]: crate::core::stamp::APPLIED_EVENTS
pub fn event_mark(event_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(event_key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The marks to record: `new` first, then the `previous` ones, each once, at most
/// [`APPLIED_EVENTS_KEPT`](crate::core::stamp::APPLIED_EVENTS_KEPT).
pub fn merged_marks<'a>(
    new: impl IntoIterator<Item = &'a String>,
    previous: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut marks: Vec<String> = Vec::new();
    for mark in new.into_iter().chain(previous) {
        if marks.len() == crate::core::stamp::APPLIED_EVENTS_KEPT {
            break;
        }
        if !marks.contains(mark) {
            marks.push(mark.clone());
        }
    }
    marks
}

/// Whether an object records the event of `mark` among those its last refreshes applied, the
/// latest of them (its `updated-at`) within `window` of `now`.
pub fn recorded(
    sync: &crate::core::external_secret::SyncState,
    mark: &str,
    window: Duration,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let refreshed = sync
        .stamp
        .as_deref()
        .and_then(|stamp| chrono::DateTime::parse_from_rfc3339(stamp).ok());
    let recent = refreshed.is_some_and(|at| {
        let age = now.signed_duration_since(at);
        chrono::Duration::from_std(window).is_ok_and(|window| age <= window)
    });
    recent && sync.applied_events.iter().any(|m| m == mark)
}

pub struct SeenEvents {
    window: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    expires: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

impl SeenEvents {
    /// A zero `window` remembers nothing.
    pub fn new(window: Duration) -> Self {
        SeenEvents {
            window,
            state: Mutex::default(),
        }
    }

    /// How long an event is remembered; zero: de-duplication is off.
    pub fn window(&self) -> Duration {
        self.window
    }

    pub fn contains(&self, id: &str) -> bool {
        let id = bounded(id);
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .expires
            .get(id.as_ref())
            .is_some_and(|expires| *expires > Instant::now())
    }

    pub fn remember(&self, id: &str) {
        if self.window.is_zero() {
            return;
        }
        let id = bounded(id);
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((expires, _)) = state.order.front() {
            if *expires > now && state.order.len() < MAX_REMEMBERED {
                break;
            }
            if let Some((expires, old)) = state.order.pop_front()
                && state.expires.get(&old) == Some(&expires)
            {
                state.expires.remove(&old);
            }
        }
        let expires = now + self.window;
        state.expires.insert(id.to_string(), expires);
        state.order.push_back((expires, id.into_owned()));
    }

    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .expires
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window() {
        let seen = SeenEvents::new(Duration::from_secs(60));
        assert!(!seen.contains("akeyless:1"));
        seen.remember("akeyless:1");
        assert!(seen.contains("akeyless:1"));
        assert!(!seen.contains("akeyless:2"));
    }

    #[test]
    fn forgets_after_the_window() {
        let seen = SeenEvents::new(Duration::from_millis(20));
        seen.remember("a");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!seen.contains("a"));
        seen.remember("b");
        assert_eq!(seen.len(), 1, "expired ids are dropped");
    }

    #[test]
    fn long_ids_are_kept_small() {
        let seen = SeenEvents::new(Duration::from_secs(60));
        let long = "x".repeat(1_000_000);
        seen.remember(&long);
        assert!(seen.contains(&long));
        assert!(!seen.contains(&"x".repeat(999_999)));
        let state = seen.state.lock().unwrap();
        assert!(state.expires.keys().all(|k| k.len() <= 80));
    }

    #[test]
    fn marks_are_short_and_kept_newest_first() {
        let mark = event_mark("akeyless\u{1f}\u{1f}48213");
        assert_eq!(mark.len(), 16);
        assert_ne!(mark, event_mark("cloudevents\u{1f}/a\u{1f}48213"));
        let old: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let new = vec!["n".to_owned(), "3".to_owned()];
        let merged = merged_marks(&new, &old);
        assert_eq!(merged.len(), crate::core::stamp::APPLIED_EVENTS_KEPT);
        assert_eq!(merged[..4], ["n", "3", "0", "1"]);
    }

    #[test]
    fn an_object_records_an_event_for_the_window_after_its_last_refresh() {
        use crate::core::external_secret::SyncState;
        let now = chrono::Utc::now();
        let at = |ago: i64| (now - chrono::Duration::seconds(ago)).to_rfc3339();
        let sync = |stamp: String| SyncState {
            stamp: Some(stamp),
            applied_events: vec!["aa".into(), "bb".into()],
            ..SyncState::default()
        };
        let window = Duration::from_secs(600);
        assert!(recorded(&sync(at(5)), "bb", window, now));
        assert!(!recorded(&sync(at(5)), "cc", window, now));
        assert!(
            !recorded(&sync(at(601)), "bb", window, now),
            "older than the window"
        );
        assert!(!recorded(&SyncState::default(), "bb", window, now));
    }

    #[test]
    fn zero_window_remembers_nothing() {
        let seen = SeenEvents::new(Duration::ZERO);
        seen.remember("a");
        assert!(!seen.contains("a"));
        assert!(seen.is_empty());
    }

    #[test]
    fn memory_is_bounded() {
        let seen = SeenEvents::new(Duration::from_secs(3600));
        for i in 0..(MAX_REMEMBERED + 10) {
            seen.remember(&i.to_string());
        }
        assert_eq!(seen.len(), MAX_REMEMBERED);
        assert!(!seen.contains("0"), "the oldest went first");
        assert!(seen.contains(&(MAX_REMEMBERED + 9).to_string()));
    }
}
