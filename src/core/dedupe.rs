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
