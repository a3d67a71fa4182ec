//! Per-client throttling of failed authentications: a client that keeps guessing is answered
//! 429 for a while, before its credentials are even looked at, while others are served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

const MAX_TRACKED_CLIENTS: usize = 10_000;

pub struct AuthThrottle {
    failures: DefaultKeyedRateLimiter<IpAddr>,
    blocked_until: Mutex<HashMap<IpAddr, Instant>>,
}

impl AuthThrottle {
    /// Allows `per_minute` failed authentications per client per minute (all at once, or
    /// spread out).
    pub fn new(per_minute: u32) -> Self {
        let per_minute = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        AuthThrottle {
            failures: RateLimiter::keyed(Quota::per_minute(per_minute)),
            blocked_until: Mutex::default(),
        }
    }

    /// How long `client` must still wait, if it is blocked.
    pub fn blocked(&self, client: IpAddr) -> Option<Duration> {
        let blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
        let until = *blocked.get(&client)?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed authentication; past the quota, the client is blocked until it has
    /// earned a new attempt.
    pub fn failed(&self, client: IpAddr) {
        if let Err(not_until) = self.failures.check_key(&client) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let mut blocked = self.blocked_until.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            blocked.retain(|_, until| *until > now);
            blocked.insert(client, now + wait);
        }
        // Forget clients whose quota has refilled, so that many addresses cannot grow memory.
        if self.failures.len() > MAX_TRACKED_CLIENTS {
            self.failures.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_a_client_past_its_quota_and_only_that_client() {
        let throttle = AuthThrottle::new(3);
        let guesser: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            throttle.failed(guesser);
            assert_eq!(throttle.blocked(guesser), None, "within quota");
        }
        throttle.failed(guesser);
        let wait = throttle.blocked(guesser).expect("blocked");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(throttle.blocked(other), None);
    }
}
