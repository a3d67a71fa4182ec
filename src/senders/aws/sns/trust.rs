//! Which URLs a message may make the service fetch: its signing certificate and its
//! SubscribeURL come from the message itself, so only SNS's own endpoints are trusted —
//! `https://sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`) — and the custom endpoint
//! named by `AWS_ENDPOINT_URL_SNS`, if any.

use reqwest::Url;

use super::SnsError;

/// `raw`, the message's `field`, if it points at SNS itself (or at `endpoint`, on the same
/// scheme, host and port).
pub fn trusted_url(
    field: &'static str,
    raw: &str,
    endpoint: Option<&Url>,
) -> Result<Url, SnsError> {
    let untrusted = |reason: &str| SnsError::UntrustedUrl {
        field,
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw).map_err(|e| untrusted(&format!("not a URL ({e})")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(untrusted("it carries user information"));
    }
    if endpoint.is_some_and(|endpoint| endpoint.origin() == url.origin()) {
        return Ok(url);
    }
    if url.scheme() != "https" {
        return Err(untrusted("it is not https"));
    }
    if url.port().is_some() {
        return Err(untrusted("it names a port"));
    }
    // `domain()` is None for an IP address.
    match url.domain() {
        Some(host) if is_sns_host(host) => Ok(url),
        _ => Err(untrusted(
            "its host is not sns.<region>.amazonaws.com or sns.<region>.amazonaws.com.cn",
        )),
    }
}

/// `sns.<region>.amazonaws.com[.cn]`, the region a single label of letters, digits and dashes.
fn is_sns_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("sns.") else {
        return false;
    };
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"));
    region.is_some_and(|region| {
        region.len() >= 3
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(raw: &str) -> bool {
        trusted_url("SigningCertURL", raw, None).is_ok()
    }

    #[test]
    fn sns_endpoints_are_trusted() {
        for url in [
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-gov-west-1.amazonaws.com/x.pem",
            "https://sns.cn-north-1.amazonaws.com.cn/x.pem",
            "https://SNS.EU-WEST-1.AMAZONAWS.COM/x.pem",
            "https://sns.eu-west-1.amazonaws.com:443/?Action=ConfirmSubscription&Token=t",
        ] {
            assert!(trusted(url), "{url}");
        }
    }

    #[test]
    fn everything_else_is_not() {
        for url in [
            "http://sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.evil.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com.evil.com/x.pem",
            "https://evil.com/sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com@evil.com/x.pem",
            "https://user:pw@sns.eu-west-1.amazonaws.com/x.pem",
            "https://evil.com#@sns.eu-west-1.amazonaws.com/x.pem",
            "https://evil.com\\@sns.eu-west-1.amazonaws.com/x.pem",
            "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
            "https://sns.eu-west-1.amazonaws.com./x.pem",
            "https://sns.amazonaws.com/x.pem",
            "https://sns..amazonaws.com/x.pem",
            "https://sns.a.b.amazonaws.com/x.pem",
            "https://s3.eu-west-1.amazonaws.com/x.pem",
            "https://xsns.eu-west-1.amazonaws.com/x.pem",
            "https://52.94.0.1/x.pem",
            "file:///etc/passwd",
            "//sns.eu-west-1.amazonaws.com/x.pem",
            "",
        ] {
            assert!(!trusted(url), "{url}");
        }
    }

    #[test]
    fn the_custom_endpoint_is_trusted_on_its_own_origin_only() {
        let endpoint = Url::parse("http://127.0.0.1:4566").unwrap();
        let at = |raw| trusted_url("SubscribeURL", raw, Some(&endpoint)).is_ok();
        assert!(at("http://127.0.0.1:4566/?Action=ConfirmSubscription"));
        assert!(at("http://127.0.0.1:4566/cert.pem"));
        assert!(!at("http://127.0.0.1:4567/cert.pem"));
        assert!(!at("https://127.0.0.1:4566/cert.pem"));
        assert!(!at("http://localhost:4566/cert.pem"));
        assert!(!at("http://user@127.0.0.1:4566/cert.pem"));
        assert!(at("https://sns.eu-west-1.amazonaws.com/x.pem"));
    }

    #[test]
    fn untrusted_urls_say_which_field_and_why() {
        let err = trusted_url("SubscribeURL", "http://sns.eu-west-1.amazonaws.com/", None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SubscribeURL") && err.contains("not https"),
            "{err}"
        );
    }
}
