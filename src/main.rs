use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use eso_refresher::app::{Application, Source};
use eso_refresher::config::Config;
use eso_refresher::telemetry;

/// Refreshes Kubernetes ExternalSecrets the moment a secret manager announces a change.
///
/// Settings come from the environment (BASIC_AUTH_USER, BASIC_AUTH_PASSWORD, HTTP_PORT, ...);
/// see configs/.env.example.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Read ExternalSecrets from the manifest files in DIR instead of a cluster, and answer
    /// webhooks with the patches that would be made (nothing is patched).
    #[arg(long, value_name = "DIR")]
    manifests: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, warnings) = match Config::from_env() {
        Ok(read) => read,
        Err(error) => {
            eprintln!("eso-refresher: {error}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::init(config.log_format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if let Err(error) = run(config, cli).await {
        tracing::error!(%error, "stopped");
        eprintln!("eso-refresher: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

async fn run(config: Config, cli: Cli) -> eso_refresher::Result<()> {
    let source = match cli.manifests {
        Some(dir) => Source::Manifests(dir),
        None => Source::Cluster(kube::Client::try_default().await?),
    };
    Application::build(config, source)
        .await?
        .run_until_stopped()
        .await
}
