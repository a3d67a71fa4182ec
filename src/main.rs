use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use eso_refresher::app::{Application, Source};
use eso_refresher::cluster::rbac;
use eso_refresher::config::{self, Config};
use eso_refresher::preview;
use eso_refresher::telemetry;

/// Refreshes Kubernetes ExternalSecrets the moment a secret manager announces a change.
///
/// Settings come from the environment: each option below names its variable, which is how the
/// service is configured in a pod (see configs/settings.env and configs/credentials.env.example);
/// an option given on the command line overrides its variable. Besides them: WEBHOOK_AUTH_<ROUTE> per webhook route, RUST_LOG
/// (the log filter, default info) and POD_NAME (the instance named in Kubernetes Events).
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Read ExternalSecrets (and stores) from PATH instead of a cluster: a file, a directory's
    /// .yaml, .yml and .json files, or - for standard input; YAML documents, JSON and lists
    /// (kubectl get -o yaml) alike. Webhooks are answered with the patches that would be made:
    /// nothing is patched, and no event is de-duplicated.
    #[arg(long, value_name = "PATH")]
    manifests: Option<PathBuf>,

    #[command(flatten)]
    settings: config::Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Say which ExternalSecrets an event would refresh, and why (the changed key, the store,
    /// the rule), without refreshing anything: read from the cluster (one list each of
    /// ExternalSecrets, SecretStores and ClusterSecretStores; no watch, no write) or from
    /// manifest files.
    Preview(preview::PreviewArgs),
    /// Print the least-privilege RBAC for the configured scope, as YAML for kubectl apply.
    Rbac {
        /// Namespaces to watch; empty for the whole cluster (a ClusterRole).
        #[arg(long, env = "WATCH_NAMESPACES", default_value = "")]
        watch_namespaces: String,
        /// The service's ServiceAccount.
        #[arg(long, default_value = rbac::NAME)]
        service_account: String,
        /// The namespace the service runs in.
        #[arg(long, env = "POD_NAMESPACE", default_value = rbac::NAME)]
        namespace: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A refused setting is one line naming it; anything else (--help, an unknown option)
        // clap prints itself.
        Err(error) => match config::ConfigError::from_clap(&error) {
            Some(error) => {
                complain(&error);
                return ExitCode::FAILURE;
            }
            None => error.exit(),
        },
    };
    if let Some(Command::Rbac {
        watch_namespaces,
        service_account,
        namespace,
    }) = &cli.command
    {
        return match config::parse_namespaces(watch_namespaces) {
            Ok(namespaces) => {
                print!(
                    "{}",
                    rbac::to_yaml(&rbac::manifests(&namespaces, service_account, namespace))
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                complain(&error);
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Preview(args)) = &cli.command {
        // Warnings (an ExternalSecret only partly understood) on stderr, beside the answer.
        let logs = telemetry::init(config::LogFormat::Text);
        let answer = match runtime() {
            Ok(runtime) => runtime
                .block_on(preview::run(args))
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        return match answer {
            Ok(answer) => {
                print!("{}", answer.render(args.output));
                ExitCode::SUCCESS
            }
            Err(error) => {
                if logs.stop() {
                    let _ = writeln!(std::io::stderr(), "eso-refresher preview: {error}");
                }
                ExitCode::FAILURE
            }
        };
    }
    let (config, warnings) = match cli.settings.into_config() {
        Ok(read) => read,
        Err(error) => {
            complain(&error);
            return ExitCode::FAILURE;
        }
    };
    // Outlives the runtime, so that what its tasks log while it stops is written too.
    let logs = telemetry::init(config.log_format);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let outcome = runtime().and_then(|runtime| runtime.block_on(run(config, cli.manifests)));
    if let Err(error) = outcome {
        tracing::error!(%error, "stopped");
        // The log line goes out before the plain one, which is left out when stderr is stuck.
        if logs.stop() {
            complain(&error);
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// One plain line on stderr, `eso-refresher: <what>`; nothing when stderr is closed (where
/// `eprintln!` would panic).
fn complain(what: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "eso-refresher: {what}");
}

/// The runtime the service and the preview run on, built after the log writer so that it
/// stops first.
fn runtime() -> eso_refresher::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(eso_refresher::Error::Io)
}

async fn run(config: Config, manifests: Option<PathBuf>) -> eso_refresher::Result<()> {
    let source = match manifests {
        Some(dir) => Source::Manifests(dir),
        None => Source::Cluster(kube::Client::try_default().await?),
    };
    Application::build(config, source)
        .await?
        .run_until_stopped()
        .await
}
