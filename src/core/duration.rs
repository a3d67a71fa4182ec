//! Durations written the way Go's `time.ParseDuration` reads them ("2s", "100ms", "1m30s",
//! "1.5h"), which is how both the original tool's settings and Kubernetes' `metav1.Duration`
//! fields (an ExternalSecret's `refreshInterval`) are spelled.

use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;

/// Go's grammar: an optional sign, then one or more `<number><unit>` terms, or a bare "0".
static GO_DURATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[-+]?(0|((\d+(\.\d+)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$").expect("valid pattern")
});

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration (use Go syntax such as \"2s\", \"100ms\" or \"1m30s\")")]
    Syntax(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large")]
    Overflow(String),
}

/// Parses a non-negative Go duration. A negative one is an error of its own kind, so callers
/// that treat "zero or less" alike can tell it from a typo.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    if !GO_DURATION.is_match(text) {
        return Err(DurationError::Syntax(text.to_owned()));
    }
    let (negative, magnitude) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if magnitude == "0" {
        return Ok(Duration::ZERO);
    }
    // humantime reads the same terms, but wants a digit before a decimal point and knows
    // only the micro sign, not the Greek mu that Go also allows.
    let mut spelled = String::with_capacity(magnitude.len() + 4);
    let mut after_digit = false;
    for c in magnitude.chars() {
        if c == '.' && !after_digit {
            spelled.push('0');
        }
        spelled.push(if c == 'μ' { 'µ' } else { c });
        after_digit = c.is_ascii_digit();
    }
    let duration = humantime::parse_duration(&spelled)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    if negative && !duration.is_zero() {
        return Err(DurationError::Negative(text.to_owned()));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_syntax() {
        let cases = [
            ("2s", Duration::from_secs(2)),
            ("100ms", Duration::from_millis(100)),
            ("1m30s", Duration::from_secs(90)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("1.5h", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("300us", Duration::from_micros(300)),
            ("300µs", Duration::from_micros(300)),
            ("300μs", Duration::from_micros(300)),
            ("7ns", Duration::from_nanos(7)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0s", Duration::ZERO),
            ("+5s", Duration::from_secs(5)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_what_go_rejects() {
        for text in [
            "", "2", "s", "1d", "2 s", "1m 30s", "2sec", "1.s.", ".s", "--1s", "abc", "1e3s",
        ] {
            assert!(
                matches!(parse(text), Err(DurationError::Syntax(_))),
                "{text:?}"
            );
        }
    }

    #[test]
    fn negative_is_its_own_error() {
        assert_eq!(parse("-1s"), Err(DurationError::Negative("-1s".into())));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(matches!(
            parse("99999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,24}") {
            let _ = parse(&text);
        }

        #[test]
        fn whole_seconds_round_trip(secs in 0u64..1_000_000) {
            proptest::prop_assert_eq!(parse(&format!("{secs}s")), Ok(Duration::from_secs(secs)));
        }
    }
}
