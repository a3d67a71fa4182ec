//! `eso-refresher preview`: which ExternalSecrets an event would refresh, and why (the changed
//! key, the store, the rule), read from the cluster once or from manifest files. Nothing is
//! patched and nothing is de-duplicated: the same index, matching and plan as a webhook's, with
//! no way out to the cluster but one list of each kind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::cluster::manifests::{self, Objects};
use crate::cluster::snapshot;
use crate::core::change::{Ignored, SecretChange};
use crate::core::external_secret::{FindRule, IndexedSecret, RemoteKey, SecretId};
use crate::core::index::RefreshIndex;
use crate::core::plan::{PatchTarget, RefreshPlan};
use crate::core::store::StoreId;
use crate::senders::{Inbox, Provider, ReadError, Reading, read_store, sns::SnsSettings};

/// What `eso-refresher preview` is asked.
#[derive(Args, Debug, Clone)]
pub struct PreviewArgs {
    /// A secret that changed, named as `POST /webhook/generic` names it: every ExternalSecret
    /// that names it, from any store. Repeat for more.
    #[arg(long = "key", value_name = "KEY", required_unless_present = "event")]
    pub keys: Vec<String>,

    /// A webhook body, as its sender posts it (`-`: standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "keys")]
    pub event: Option<PathBuf>,

    /// The sender whose route the body is posted to (`POST /webhook/<SENDER>`); by default the
    /// body is recognized by its shape, as `POST /webhook` does.
    #[arg(long, value_name = "SENDER", requires = "event",
        value_parser = clap::builder::PossibleValuesParser::new(Provider::ALL.map(Provider::name)))]
    pub sender: Option<String>,

    /// Read ExternalSecrets and stores from PATH (a file, a directory's .yaml, .yml and .json
    /// files, or `-` for standard input) instead of the cluster.
    #[arg(long, value_name = "PATH")]
    pub manifests: Option<PathBuf>,

    /// From the cluster: the ExternalSecrets and SecretStores of this namespace only (every
    /// namespace by default).
    #[arg(
        long,
        short = 'n',
        value_name = "NAMESPACE",
        conflicts_with = "manifests"
    )]
    pub namespace: Option<String>,

    /// How to print the answer.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One line per ExternalSecret and rule that a change matches.
    Table,
    /// The same, as one JSON object.
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the event: {0}")]
    Event(#[from] ReadError),
    #[error("the event and the manifests cannot both come from standard input")]
    StdinTwice,
    #[error(transparent)]
    Service(#[from] crate::Error),
}

/// Which ExternalSecrets the event would refresh, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    /// Where the ExternalSecrets were read: `cluster`, or the manifests' path.
    pub source: String,
    pub external_secrets: usize,
    pub stores: usize,
    /// Store kinds that could not be read: their readers match changes from any provider.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<String>,
    /// A delivery that is a handshake (a subscription validation), answered as such.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake: Option<serde_json::Value>,
    pub changes: Vec<Change>,
    /// Events that ask for no refresh, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<Ignored>,
    /// One entry per changed key, ExternalSecret and rule of it that the key matches.
    pub matches: Vec<Match>,
    /// Changed keys that no ExternalSecret references.
    pub unmatched: Vec<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub key: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// The changed key, as the event names it.
    pub key: String,
    pub namespace: String,
    pub name: String,
    /// The entry of the ExternalSecret that the key matches: `key <remote key>` (a
    /// `data[].remoteRef.key` or `dataFrom[].extract.key`), or `find path <path> name
    /// <regexp>` (a `dataFrom[].find`).
    pub rule: String,
    /// The store that entry reads from, as `SecretStore <namespace>/<name>` or
    /// `ClusterSecretStore <name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// The store's provider (`spec.provider`); absent when the store was not read, and then
    /// the key matches as written whatever the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// `refresh` or `skip`.
    pub action: &'static str,
    /// What a refresh patches: the ExternalSecret, or the ClusterExternalSecret that owns it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Why it is skipped: a code as webhooks answer it (`created_once`, …) and a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Reads the event and the ExternalSecrets, and says what the event would refresh.
pub async fn run(args: &PreviewArgs) -> Result<Preview, PreviewError> {
    let stdin = Path::new("-");
    if args.event.as_deref() == Some(stdin) && args.manifests.as_deref() == Some(stdin) {
        return Err(PreviewError::StdinTwice);
    }
    let reading = read_event(args).await?;
    let (source, objects, unread) = match &args.manifests {
        Some(path) => (
            path.display().to_string(),
            manifests::load(path)?,
            Vec::new(),
        ),
        None => {
            crate::install_crypto_provider();
            let client = kube::Client::try_default()
                .await
                .map_err(crate::Error::Kube)?;
            let read = snapshot::read(&client, args.namespace.as_deref()).await?;
            ("cluster".to_owned(), read.objects, read.unread)
        }
    };
    let mut preview = match reading {
        Reading::Notification(notification, _) => {
            let mut preview = explain(&objects, &notification.changes);
            preview.ignored = notification.ignored;
            preview
        }
        Reading::Reply(reply) => Preview {
            handshake: Some(reply),
            ..explain(&objects, &[])
        },
    };
    preview.source = source;
    preview.unread = unread;
    Ok(preview)
}

async fn read_event(args: &PreviewArgs) -> Result<Reading, PreviewError> {
    let (route, body) = match &args.event {
        None => (
            Provider::from_name("generic"),
            serde_json::json!({ "keys": args.keys })
                .to_string()
                .into_bytes(),
        ),
        Some(path) => {
            let read = if path == Path::new("-") {
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut body).map(|_| body)
            } else {
                std::fs::read(path)
            };
            let body = read.map_err(|source| PreviewError::Read {
                path: path.clone(),
                source,
            })?;
            (args.sender.as_deref().and_then(Provider::from_name), body)
        }
    };
    // As the service reads a delivery, but offline: an SNS message's signature is not checked
    // and no subscription is confirmed, since that would fetch from SNS.
    let inbox = Inbox::new(SnsSettings {
        verify_signatures: false,
        confirm_subscriptions: false,
        ..SnsSettings::default()
    });
    Ok(inbox.read(route, |_| None, &body).await?)
}

/// The index of `objects`, and for each change every ExternalSecret it concerns with the
/// rules that make it so and what a webhook would do about it.
pub fn explain(objects: &Objects, changes: &[SecretChange]) -> Preview {
    let mut index = RefreshIndex::default();
    objects.fill(&mut index, read_store);
    let plan = RefreshPlan::new(changes, &index);
    // The stores alone: each entry of a matched ExternalSecret is tried in it on its own.
    let mut alone = RefreshIndex::default();
    let stores_only = Objects {
        external_secrets: Vec::new(),
        stores: objects.stores.clone(),
    };
    stores_only.fill(&mut alone, read_store);
    let providers: HashMap<StoreId, String> = objects
        .stores
        .iter()
        .filter_map(|store| {
            let provider = store.data["spec"]["provider"].as_object()?.keys().next()?;
            Some((StoreId::of(store)?, provider.clone()))
        })
        .collect();

    let mut matches = Vec::new();
    for change in changes {
        for secret in index.lookup_change(change) {
            let (action, target, code, reason) = match plan.skipped.get(&secret.id) {
                Some(skip) => (
                    "skip",
                    None,
                    Some(skip.reason.code),
                    Some(skip.reason.text.clone()),
                ),
                None => ("refresh", target_of(&plan, &secret.id), None, None),
            };
            for (rule, store) in rules_matching(&mut alone, &secret, change) {
                matches.push(Match {
                    key: change.key.clone(),
                    namespace: secret.id.namespace.to_string(),
                    name: secret.id.name.to_string(),
                    rule,
                    provider: store.as_ref().and_then(|s| providers.get(s)).cloned(),
                    store: store.map(|s| s.to_string()),
                    action,
                    target: target.clone(),
                    code,
                    reason: reason.clone(),
                });
            }
        }
    }
    Preview {
        source: String::new(),
        external_secrets: index.len(),
        stores: index.store_count(),
        unread: Vec::new(),
        changes: changes
            .iter()
            .map(|change| Change {
                key: change.key.clone(),
                also: change.also.clone(),
                event_type: change.event_type.clone(),
                event_id: change.event_id.clone(),
            })
            .collect(),
        matches,
        unmatched: plan.unmatched.into_iter().collect(),
        ignored: Vec::new(),
        handshake: None,
    }
}

/// The patch target a matched ExternalSecret is refreshed through.
fn target_of(plan: &RefreshPlan, id: &SecretId) -> Option<String> {
    plan.targets
        .iter()
        .find(|(_, cause)| cause.via.contains(id))
        .map(|(target, _)| match target {
            PatchTarget::ExternalSecret(_) => target.to_string(),
            PatchTarget::ClusterExternalSecret(_) => format!("{target} (force-sync)"),
        })
}

/// The entries of `secret` that `change` matches, each with its store: each entry is put
/// alone into `alone` (which holds the stores only) and looked up as the index looks up any
/// ExternalSecret, so the reasons given are the service's own.
fn rules_matching(
    alone: &mut RefreshIndex,
    secret: &IndexedSecret,
    change: &SecretChange,
) -> Vec<(String, Option<StoreId>)> {
    let mut matching = |keys: Vec<RemoteKey>, finds: Vec<FindRule>| {
        alone.apply(IndexedSecret {
            keys,
            finds,
            ..secret.clone()
        });
        !alone.lookup_change(change).is_empty()
    };
    let mut rules = Vec::new();
    for key in &secret.keys {
        if matching(vec![key.clone()], Vec::new()) {
            rules.push((format!("key {}", key.written), key.store.clone()));
        }
    }
    for find in &secret.finds {
        if matching(Vec::new(), vec![find.clone()]) {
            let mut rule = "find".to_owned();
            if let Some(path) = &find.path {
                rule.push_str(&format!(" path {path}"));
            }
            if let Some(name) = &find.name {
                rule.push_str(&format!(" name {}", name.as_str()));
            }
            rules.push((rule, find.store.clone()));
        }
    }
    alone.delete(&secret.id);
    rules
}

impl Preview {
    /// A table: a line saying what was read, one row per match, then what matched nothing and
    /// what was ignored.
    pub fn table(&self) -> String {
        use comfy_table::{Table, presets};
        let mut text = format!(
            "{} ExternalSecrets and {} stores read from {}\n",
            self.external_secrets, self.stores, self.source
        );
        for unread in &self.unread {
            text.push_str(&format!(
                "not read: {unread}; their readers match changes from any provider\n"
            ));
        }
        if let Some(handshake) = &self.handshake {
            text.push_str(&format!(
                "a handshake, answered {handshake}: it refreshes nothing\n"
            ));
        }
        if !self.matches.is_empty() {
            let mut table = Table::new();
            table.load_style(presets::NOTHING).set_header([
                "CHANGED KEY",
                "EXTERNALSECRET",
                "STORE",
                "RULE",
                "ACTION",
            ]);
            for m in &self.matches {
                let store = match (&m.store, &m.provider) {
                    (Some(store), Some(provider)) => format!("{store} ({provider})"),
                    (Some(store), None) => format!("{store} (not read)"),
                    (None, _) => "-".to_owned(),
                };
                let action = match (&m.target, &m.reason) {
                    (Some(target), _) => format!("refresh {target}"),
                    (None, Some(reason)) => format!("skip: {reason}"),
                    (None, None) => m.action.to_owned(),
                };
                table.add_row([
                    m.key.clone(),
                    format!("{}/{}", m.namespace, m.name),
                    store,
                    m.rule.clone(),
                    action,
                ]);
            }
            // Columns apart by three spaces, as kubectl prints them.
            for column in table.column_iter_mut() {
                column.set_padding((0, 3));
            }
            for line in table.lines() {
                text.push_str(line.trim_end());
                text.push('\n');
            }
        }
        for key in &self.unmatched {
            text.push_str(&format!("no ExternalSecret matches {key}\n"));
        }
        for ignored in &self.ignored {
            match &ignored.event_id {
                Some(id) => text.push_str(&format!("ignored event {id}: {}\n", ignored.reason)),
                None => text.push_str(&format!("ignored: {}\n", ignored.reason)),
            }
        }
        text
    }

    pub fn render(&self, output: Output) -> String {
        match output {
            Output::Table => self.table(),
            Output::Json => {
                let mut json = serde_json::to_string_pretty(self).unwrap_or_default();
                json.push('\n');
                json
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Objects {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
        manifests::load(&dir).expect("the examples")
    }

    async fn preview(event: &str, sender: Option<&str>, objects: &Objects) -> Preview {
        let args = PreviewArgs {
            keys: Vec::new(),
            event: Some(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/fixtures/events")
                    .join(event),
            ),
            sender: sender.map(str::to_owned),
            manifests: None,
            namespace: None,
            output: Output::Table,
        };
        let Reading::Notification(notification, _) = read_event(&args).await.expect("read") else {
            panic!("not a handshake");
        };
        explain(objects, &notification.changes)
    }

    fn rows(preview: &Preview) -> Vec<String> {
        preview
            .matches
            .iter()
            .map(|m| {
                let outcome = m.target.as_deref().or(m.code).unwrap_or("?");
                format!("{}/{} | {} | {}", m.namespace, m.name, m.rule, outcome)
            })
            .collect()
    }

    #[tokio::test]
    async fn says_which_entry_of_which_external_secret_an_event_matches() {
        let preview = preview("akeyless-array.json", None, &examples()).await;
        assert_eq!(
            rows(&preview),
            [
                "payments/payments-db | key /prod/payments/db-password | ExternalSecret payments/payments-db",
                "payments/payments-db-bootstrap | key /prod/payments/db-password | created_once",
                "payments/payments-api | key prod/payments/api-key | ExternalSecret payments/payments-api",
            ]
        );
        let first = &preview.matches[0];
        assert_eq!(first.store.as_deref(), Some("ClusterSecretStore akeyless"));
        assert_eq!(first.provider.as_deref(), Some("akeyless"));
        assert_eq!(first.action, "refresh");
        assert_eq!(preview.matches[1].action, "skip");
        assert!(preview.unmatched.is_empty());
        assert_eq!(preview.changes.len(), 2);
    }

    #[tokio::test]
    async fn find_rules_and_cluster_external_secrets_are_named() {
        let objects = examples();
        let changes = [SecretChange::named("/prod/shared/registry-token", None)];
        let preview = explain(&objects, &changes);
        assert_eq!(
            rows(&preview),
            [
                "platform/shared-bundle | find path prod/shared name .*-token$ | ExternalSecret platform/shared-bundle",
                "team-a/registry-token | key /prod/shared/registry-token | ClusterExternalSecret registry-token (force-sync)",
            ]
        );
    }

    #[tokio::test]
    async fn a_change_from_another_provider_leaves_other_stores_readers_alone() {
        // billing-db reads /prod/payments/db-password from AWS: an Akeyless event passes it by,
        // a change that names no provider finds it.
        let objects = examples();
        let akeyless = preview("akeyless-single.json", None, &objects).await;
        assert!(
            akeyless.matches.iter().all(|m| m.name != "billing-db"),
            "{akeyless:#?}"
        );
        assert!(
            akeyless.matches.iter().any(|m| m.name == "payments-db"),
            "{akeyless:#?}"
        );
        let generic = explain(
            &objects,
            &[SecretChange::named("prod/payments/db-password", None)],
        );
        let billing: Vec<&Match> = generic
            .matches
            .iter()
            .filter(|m| m.name == "billing-db")
            .collect();
        assert_eq!(billing.len(), 1, "{generic:#?}");
        assert_eq!(billing[0].provider.as_deref(), Some("aws"));
    }

    #[test]
    fn the_table_has_a_row_per_match_and_says_what_matched_nothing() {
        let objects = examples();
        let change = |key: &str| SecretChange::named(key, None);
        let mut preview = explain(
            &objects,
            &[
                change("/prod/payments/db-password"),
                change("/nothing/here"),
            ],
        );
        preview.source = "examples".into();
        let table = preview.table();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("stores read from examples"), "{table}");
        assert!(lines[1].contains("CHANGED KEY") && lines[1].contains("ACTION"));
        assert!(
            lines
                .iter()
                .any(|l| l.contains("payments/payments-db-bootstrap")
                    && l.contains("skip: refreshPolicy is CreatedOnce")),
            "{table}"
        );
        assert_eq!(
            lines.last(),
            Some(&"no ExternalSecret matches /nothing/here")
        );
        let json: serde_json::Value =
            serde_json::from_str(&preview.render(Output::Json)).expect("JSON");
        assert_eq!(json["unmatched"], serde_json::json!(["/nothing/here"]));
        assert_eq!(
            json["matches"].as_array().map(Vec::len),
            Some(preview.matches.len())
        );
    }
}
