//! The AWS SNS settings: `AWS_SNS_*` and `AWS_ENDPOINT_URL_SNS`.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::ConfigError;
use super::parse::{self, Setting};
use crate::senders::sns::SnsSettings;

/// AWS SNS (an SNS topic with an HTTPS subscription to /webhook/aws).
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "AWS SNS")]
pub struct SnsArgs {
    /// Check every SNS message's signature against the certificate SNS names, fetched only from
    /// SNS's own hosts. false is logged as a warning: then anyone with the webhook credentials
    /// can post SNS messages.
    #[arg(long, env = "AWS_SNS_VERIFY_SIGNATURES", default_value = "true",
        action = ArgAction::Set, value_parser = Setting(parse::flag))]
    aws_sns_verify_signatures: bool,

    /// Confirm a new SNS subscription by fetching its SubscribeURL; false: the URL is only
    /// logged.
    #[arg(long, env = "AWS_SNS_CONFIRM_SUBSCRIPTIONS", default_value = "true",
        action = ArgAction::Set, value_parser = Setting(parse::flag))]
    aws_sns_confirm_subscriptions: bool,

    /// Comma-separated SNS topic ARNs whose messages are accepted (others: 403); empty accepts
    /// every topic.
    #[arg(long, env = "AWS_SNS_TOPIC_ARNS", default_value = "",
        value_parser = Setting(parse::topic_arns))]
    aws_sns_topic_arns: std::vec::Vec<String>,

    /// How old an SNS message's signed Timestamp may be (older: 403 stale_message), Go
    /// duration; keep it longer than the subscription's delivery retries.
    #[arg(long, env = "AWS_SNS_MAX_AGE", default_value = "1h",
        value_parser = Setting(parse::positive_duration))]
    aws_sns_max_age: Duration,

    /// Accept AWS events only inside signed SNS messages; a bare one is refused (403
    /// sns_required). Needs AWS_SNS_VERIFY_SIGNATURES.
    #[arg(long, env = "AWS_SNS_ONLY", default_value = "false",
        action = ArgAction::Set, value_parser = Setting(parse::flag))]
    aws_sns_only: bool,

    /// A custom SNS endpoint (e.g. LocalStack, http://localhost:4566) trusted besides SNS's own
    /// hosts for certificates and SubscribeURLs; leave empty against real AWS.
    #[arg(long, env = "AWS_ENDPOINT_URL_SNS", default_value = "",
        value_parser = Setting(parse::endpoint))]
    aws_endpoint_url_sns: std::option::Option<reqwest::Url>,
}

impl SnsArgs {
    /// Checks the settings against each other; turning signature checks off is warned about.
    pub fn read(self, warnings: &mut Vec<String>) -> Result<SnsSettings, ConfigError> {
        if self.aws_sns_only && !self.aws_sns_verify_signatures {
            return Err(ConfigError::invalid(
                "AWS_SNS_ONLY",
                "true",
                "AWS_SNS_ONLY needs AWS_SNS_VERIFY_SIGNATURES: unverified, an SNS envelope proves nothing",
            ));
        }
        if !self.aws_sns_verify_signatures {
            warnings.push(
                "AWS_SNS_VERIFY_SIGNATURES=false: SNS message signatures are not checked; anyone with the webhook credentials can send SNS messages".into(),
            );
        }
        Ok(SnsSettings {
            verify_signatures: self.aws_sns_verify_signatures,
            confirm_subscriptions: self.aws_sns_confirm_subscriptions,
            topic_arns: self.aws_sns_topic_arns,
            endpoint: self.aws_endpoint_url_sns,
            max_age: self.aws_sns_max_age,
            only: self.aws_sns_only,
        })
    }
}
