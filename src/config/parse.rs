//! How a setting's text becomes its value. Each parser is named in a setting's declaration
//! (`value_parser = Setting(port)`); [`Setting`] gives them what every setting shares: blank
//! text counts as unset (the declared default), and a refusal names the variable.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::TypedValueParser;

use super::ConfigError;
use crate::core::duration;

/// What was wrong with a value: the part refused and what was expected instead.
#[derive(Debug)]
pub struct Refusal {
    pub value: String,
    pub expected: String,
}

pub fn refuse(value: &str, expected: impl Into<String>) -> Refusal {
    Refusal {
        value: value.to_owned(),
        expected: expected.into(),
    }
}

/// A setting's parser, as clap calls it.
#[derive(Clone)]
pub struct Setting<T>(pub fn(&str) -> Result<T, Refusal>);

impl<T: Clone + Send + Sync + 'static> TypedValueParser for Setting<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let name = arg
            .and_then(clap::Arg::get_env)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(text) = value.to_str() else {
            // Not echoed: it may be a credential.
            return Err(raise(cmd, arg, &name, refuse("", "expected UTF-8 text")));
        };
        let text = if text.trim().is_empty() {
            arg.and_then(|arg| arg.get_default_values().first())
                .and_then(|default| default.to_str())
                .unwrap_or_default()
        } else {
            text
        };
        (self.0)(text).map_err(|refusal| raise(cmd, arg, &name, refusal))
    }
}

/// Clap's error for a refused value, carrying the [`ConfigError`] as its source so that the
/// caller can print that one line instead of clap's usage text.
fn raise(
    cmd: &clap::Command,
    arg: Option<&clap::Arg>,
    name: &str,
    refusal: Refusal,
) -> clap::Error {
    let error = ConfigError::invalid(name, &refusal.value, refusal.expected);
    let fail = move |_: &str| Err::<(), ConfigError>(error.clone());
    fail.parse_ref(cmd, arg, OsStr::new(&refusal.value))
        .err()
        .unwrap_or_else(|| clap::Error::new(clap::error::ErrorKind::ValueValidation))
}

/// The spellings Go's `strconv.ParseBool` accepts, in any case.
pub fn flag(text: &str) -> Result<bool, Refusal> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "t" | "true" => Ok(true),
        "0" | "f" | "false" => Ok(false),
        _ => Err(refuse(text.trim(), "expected true or false")),
    }
}

pub fn port(text: &str) -> Result<u16, Refusal> {
    let text = text.trim();
    text.parse()
        .map_err(|_| refuse(text, "expected a port number from 0 to 65535"))
}

/// A count above zero; `what` completes "expected ...".
pub fn positive(text: &str, what: &str) -> Result<usize, Refusal> {
    let text = text.trim();
    text.parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| refuse(text, format!("expected {what}")))
}

/// A count above zero that fits 32 bits.
pub fn positive_u32(text: &str) -> Result<u32, Refusal> {
    let n = positive(text, "a positive number")?;
    u32::try_from(n).map_err(|_| refuse(&n.to_string(), "expected a smaller number"))
}

pub fn duration(text: &str) -> Result<Duration, Refusal> {
    let text = text.trim();
    duration::parse(text).map_err(|e| refuse(text, e.to_string()))
}

pub fn positive_duration(text: &str) -> Result<Duration, Refusal> {
    Some(duration(text)?)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| refuse(text.trim(), "expected a positive duration"))
}

/// A Go duration, or the reason it is not one (for a setting that warns and uses its default).
pub fn lenient_duration(text: &str) -> Result<Result<Duration, duration::DurationError>, Refusal> {
    Ok(duration::parse(text.trim()))
}

/// A Go duration where empty or zero means off.
pub fn optional_duration(text: &str) -> Result<Option<Duration>, Refusal> {
    let wait = self::text(text)?.map(|text| duration(&text)).transpose()?;
    Ok(wait.filter(|d| !d.is_zero()))
}

/// Trimmed text; blank is unset.
pub fn text(text: &str) -> Result<Option<String>, Refusal> {
    let text = text.trim();
    Ok((!text.is_empty()).then(|| text.to_owned()))
}

/// A file name, taken as given; empty is unset.
pub fn path(text: &str) -> Result<Option<PathBuf>, Refusal> {
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

/// A comma-separated list, each item trimmed, blanks dropped.
pub fn list(text: &str) -> Result<Vec<String>, Refusal> {
    Ok(items(text).map(str::to_owned).collect())
}

pub fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// A comma-separated list, each item once, in the order first given; every item must pass `ok`.
pub fn unique_list(
    text: &str,
    ok: fn(&str) -> bool,
    expected: &str,
) -> Result<Vec<String>, Refusal> {
    let mut list: Vec<String> = Vec::new();
    for item in items(text) {
        if !ok(item) {
            return Err(refuse(item, expected));
        }
        if !list.iter().any(|known| known == item) {
            list.push(item.to_owned());
        }
    }
    Ok(list)
}

/// A `WATCH_NAMESPACES` value: namespace names; empty means all namespaces.
pub fn namespaces(text: &str) -> Result<Vec<String>, Refusal> {
    unique_list(
        text,
        is_dns_label,
        "expected a comma-separated list of namespace names",
    )
}

pub fn topic_arns(text: &str) -> Result<Vec<String>, Refusal> {
    unique_list(
        text,
        |arn| arn.starts_with("arn:") && arn.split(':').count() == 6,
        "expected a comma-separated list of topic ARNs (arn:aws:sns:<region>:<account>:<topic>)",
    )
}

/// An http(s) URL with a host; empty is unset.
pub fn endpoint(text: &str) -> Result<Option<reqwest::Url>, Refusal> {
    let Some(text) = self::text(text)? else {
        return Ok(None);
    };
    reqwest::Url::parse(&text)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
        .map(Some)
        .ok_or_else(|| {
            refuse(
                &text,
                "expected an http(s) URL such as http://localhost:4566",
            )
        })
}

fn is_dns_label(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}
