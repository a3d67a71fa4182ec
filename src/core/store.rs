//! SecretStores and ClusterSecretStores: which provider an ExternalSecret reads from, where,
//! and how that provider spells a key it is given. Pure: the watch feeds objects in, the index
//! asks whether a change concerns a store.

use std::fmt;
use std::sync::Arc;

use kube::api::DynamicObject;
use serde_json::Value;

use crate::core::change::Origin;
use crate::core::external_secret::{RemoteKey, normalize_key};

/// A SecretStore (in a namespace) or a ClusterSecretStore (`namespace: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoreId {
    pub namespace: Option<Arc<str>>,
    pub name: Arc<str>,
}

impl StoreId {
    pub fn namespaced(namespace: &str, name: &str) -> Self {
        StoreId {
            namespace: Some(namespace.into()),
            name: name.into(),
        }
    }

    pub fn cluster(name: &str) -> Self {
        StoreId {
            namespace: None,
            name: name.into(),
        }
    }

    /// The store an ExternalSecret in `namespace` names with `storeRef.kind` and `.name`: a
    /// SecretStore lives in the ExternalSecret's own namespace.
    pub fn referenced(namespace: &str, kind: Option<&str>, name: &str) -> Self {
        match kind {
            Some("ClusterSecretStore") => StoreId::cluster(name),
            _ => StoreId::namespaced(namespace, name),
        }
    }

    /// The id of a SecretStore or ClusterSecretStore object.
    pub fn of(object: &DynamicObject) -> Option<StoreId> {
        let name = object.metadata.name.as_deref()?;
        Some(match object.metadata.namespace.as_deref() {
            Some(namespace) => StoreId::namespaced(namespace, name),
            None => StoreId::cluster(name),
        })
    }
}

impl fmt::Display for StoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "SecretStore {namespace}/{}", self.name),
            None => write!(f, "ClusterSecretStore {}", self.name),
        }
    }
}

/// What a store reads from: the parts of `spec.provider` that tell which changes concern it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    Akeyless,
    Aws {
        region: Option<String>,
        /// Prepended by ESO to every key.
        prefix: String,
        parameter_store: bool,
    },
    Gcp {
        project: Option<String>,
    },
    Azure {
        /// The vault's name: the first label of `vaultUrl`'s host, lower case.
        vault: Option<String>,
    },
    Vault {
        /// The KV mount, without slashes.
        mount: Option<String>,
        kv_v1: bool,
    },
    Doppler {
        project: Option<String>,
        config: Option<String>,
    },
    Infisical {
        environment: Option<String>,
        path: String,
        recursive: bool,
    },
    /// A provider no change event comes from (its `spec.provider` field name).
    Other(String),
}

fn text(value: &Value, field: &str) -> Option<String> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A folder path as `/a/b`: one leading slash, none trailing.
fn folder(path: &str) -> String {
    format!("/{}", path.trim_matches('/'))
}

fn folder_of(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

/// An AWS Secrets Manager name from a name or an ARN. Secrets Manager appends "-" and six
/// random characters to the name in an ARN.
pub fn aws_secret_name(id: &str) -> String {
    match id.strip_prefix("arn:") {
        Some(_) => {
            let name = id.splitn(7, ':').nth(6).unwrap_or(id);
            match name.rsplit_once('-') {
                Some((stem, suffix))
                    if suffix.len() == 6 && suffix.chars().all(|c| c.is_ascii_alphanumeric()) =>
                {
                    stem.to_owned()
                }
                _ => name.to_owned(),
            }
        }
        None => id.to_owned(),
    }
}
/// `S` of `projects/P/secrets/S[/versions/V]` or `projects/P/locations/L/secrets/S[/…]`.
pub fn gcp_secret_name(name: &str) -> Option<&str> {
    match name.split('/').collect::<Vec<_>>().as_slice() {
        ["projects", _, "secrets", secret, ..]
        | ["projects", _, "locations", _, "secrets", secret, ..] => Some(secret),
        _ => None,
    }
}

/// The secret a Vault store reads for `key`, as `<mount>/<path>` without KV v2's `data/`
/// segment, the way ESO builds it: a key that starts with the store's mount has it cut (and,
/// on KV v2, a `data/` after it); any other key is under the mount as written. Without a
/// mount in the store the key is the whole path, with `data/` after its mount on KV v2.
fn vault_path(mount: Option<&str>, kv_v1: bool, key: &str) -> String {
    match mount.filter(|m| !m.is_empty()) {
        Some(mount) => {
            let rest = match key.strip_prefix(&format!("{mount}/")) {
                Some(rest) if !kv_v1 => rest.strip_prefix("data/").unwrap_or(rest),
                Some(rest) => rest,
                None => key,
            };
            format!("{mount}/{rest}")
        }
        None if !kv_v1 => key.replacen("/data/", "/", 1),
        None => key.to_owned(),
    }
}

impl Backend {
    /// Reads `spec.provider` of a SecretStore or ClusterSecretStore.
    pub fn from_object(object: &DynamicObject) -> Backend {
        let provider = &object.data["spec"]["provider"];
        let Some((name, config)) = provider.as_object().and_then(|p| p.iter().next()) else {
            return Backend::Other(String::new());
        };
        match name.as_str() {
            "akeyless" => Backend::Akeyless,
            "aws" => Backend::Aws {
                region: text(config, "region"),
                prefix: text(config, "prefix").unwrap_or_default(),
                parameter_store: text(config, "service").as_deref() == Some("ParameterStore"),
            },
            "gcpsm" => Backend::Gcp {
                project: text(config, "projectID"),
            },
            "azurekv" => Backend::Azure {
                vault: text(config, "vaultUrl").and_then(|url| vault_name(&url)),
            },
            "vault" => Backend::Vault {
                mount: text(config, "path").map(|p| p.trim_matches('/').to_owned()),
                kv_v1: text(config, "version").as_deref() == Some("v1"),
            },
            "doppler" => Backend::Doppler {
                project: text(config, "project"),
                config: text(config, "config"),
            },
            "infisical" => {
                let scope = &config["secretsScope"];
                Backend::Infisical {
                    environment: text(scope, "environmentSlug"),
                    path: folder(&text(scope, "secretsPath").unwrap_or_default()),
                    recursive: scope["recursive"].as_bool().unwrap_or(false),
                }
            }
            other => Backend::Other(other.to_owned()),
        }
    }

    /// How the provider names the secret an ExternalSecret asks for with `key`: the spellings
    /// its change events use, normalized.
    pub fn spellings(&self, key: &RemoteKey) -> Vec<String> {
        let normalized = |k: &str| normalize_key(k).to_owned();
        match self {
            Backend::Aws { .. } if key.key.starts_with("arn:") => {
                // A full ARN ends in six random characters, a partial one does not; which
                // this is cannot be told from the text, so both names are kept.
                let name = key.key.splitn(7, ':').nth(6).unwrap_or(&key.key);
                let mut names = vec![aws_secret_name(&key.key)];
                if names[0] != name {
                    names.push(name.to_owned());
                }
                names
            }
            // ESO prepends the prefix to the key exactly as written.
            Backend::Aws { prefix, .. } => vec![normalized(&format!("{prefix}{}", key.written))],
            Backend::Gcp { .. } => vec![gcp_secret_name(&key.key).unwrap_or(&key.key).to_owned()],
            Backend::Azure { .. } => {
                vec![
                    key.key
                        .strip_prefix("secret/")
                        .unwrap_or(&key.key)
                        .to_owned(),
                ]
            }
            Backend::Vault { mount, kv_v1 } => vec![vault_path(mount.as_deref(), *kv_v1, &key.key)],
            _ => vec![key.key.clone()],
        }
    }

    /// The Infisical folder a key is read from: a key with slashes names its folder, absolute
    /// or under the store's path; a bare name is in the store's path.
    fn infisical_folder(path: &str, written: &str) -> Option<String> {
        let (folder, _) = written.rsplit_once('/')?;
        Some(if written.starts_with('/') {
            folder_of(folder)
        } else {
            folder_of(&format!("{path}/{folder}"))
        })
    }

    /// Whether a change from `origin` can concern this store: the same provider, and the same
    /// region, project or vault where both name one.
    pub fn accepts(&self, origin: &Origin) -> bool {
        let differ =
            |a: &Option<String>, b: &Option<String>| matches!((a, b), (Some(a), Some(b)) if a != b);
        match (self, origin) {
            (Backend::Akeyless, Origin::Akeyless) => true,
            (
                Backend::Aws {
                    region,
                    parameter_store,
                    ..
                },
                Origin::Aws { region: from },
            ) => !parameter_store && !differ(region, from),
            (Backend::Gcp { project }, Origin::Gcp { project: from }) => match (project, from) {
                (Some(id), Some(from)) if id != from => {
                    // Events may name the project by number, stores by id: only two ids or
                    // two numbers can be told apart.
                    let numeric = |s: &str| s.chars().all(|c| c.is_ascii_digit());
                    numeric(id) != numeric(from)
                }
                _ => true,
            },
            (Backend::Azure { vault }, Origin::Azure { vault: from }) => match (vault, from) {
                (Some(vault), Some(from)) => vault.eq_ignore_ascii_case(from),
                _ => true,
            },
            (Backend::Vault { mount, .. }, Origin::Vault { mount: from }) => !differ(mount, from),
            _ => false,
        }
    }

    /// Whether a change to a whole scope (a Doppler config, an Infisical folder) concerns every
    /// secret this store reads. A store that does not name its scope reads the one its token
    /// is bound to, which cannot be known here: it counts as concerned.
    pub fn in_scope(&self, origin: &Origin) -> bool {
        let same =
            |ours: &Option<String>, theirs: &str| ours.as_deref().is_none_or(|o| o == theirs);
        match (self, origin) {
            (
                Backend::Doppler { project, config },
                Origin::Doppler {
                    project: p,
                    config: c,
                },
            ) => same(project, p) && same(config, c),
            (
                Backend::Infisical {
                    environment,
                    path,
                    recursive,
                },
                Origin::Infisical {
                    environment: e,
                    path: changed,
                },
            ) => {
                let changed = folder(changed);
                let under = path == "/" || changed.starts_with(&format!("{path}/"));
                same(environment, e) && (*path == changed || (*recursive && under))
            }
            _ => false,
        }
    }

    /// Whether a key read through this store is in the scope a change names, though the
    /// store's own scope is not: an Infisical key with slashes names its own folder.
    pub fn key_in_scope(&self, key: &RemoteKey, origin: &Origin) -> bool {
        match (self, origin) {
            (
                Backend::Infisical {
                    environment, path, ..
                },
                Origin::Infisical {
                    environment: e,
                    path: changed,
                },
            ) => {
                environment.as_deref().is_none_or(|ours| ours == e)
                    && Self::infisical_folder(path, &key.written) == Some(folder_of(changed))
            }
            _ => false,
        }
    }
}

/// `https://my-vault.vault.azure.net/` → `my-vault`.
fn vault_name(url: &str) -> Option<String> {
    let host = url.split("://").nth(1).unwrap_or(url);
    let label = host.split(['.', '/', ':']).next()?;
    (!label.is_empty()).then(|| label.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::tests::object;
    use serde_json::json;

    fn backend(provider: Value) -> Backend {
        Backend::from_object(&object(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "SecretStore",
            "metadata": {"namespace": "a", "name": "s"},
            "spec": {"provider": provider},
        })))
    }

    #[test]
    fn reads_each_provider() {
        assert_eq!(
            backend(
                json!({"aws": {"service": "SecretsManager", "region": "eu-west-1", "prefix": "prod/"}})
            ),
            Backend::Aws {
                region: Some("eu-west-1".into()),
                prefix: "prod/".into(),
                parameter_store: false
            }
        );
        assert_eq!(
            backend(json!({"azurekv": {"vaultUrl": "https://My-Vault.vault.azure.net/"}})),
            Backend::Azure {
                vault: Some("my-vault".into())
            }
        );
        assert_eq!(
            backend(
                json!({"vault": {"server": "https://vault:8200", "path": "/secret/", "version": "v2"}})
            ),
            Backend::Vault {
                mount: Some("secret".into()),
                kv_v1: false
            }
        );
        assert_eq!(
            backend(
                json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "payments/"}}})
            ),
            Backend::Infisical {
                environment: Some("prod".into()),
                path: "/payments".into(),
                recursive: false
            }
        );
        assert_eq!(backend(json!({"fake": {}})), Backend::Other("fake".into()));
        assert_eq!(backend(json!(null)), Backend::Other(String::new()));
    }

    /// The spellings of `key` (as written in an ExternalSecret) through `store`.
    fn spelled(store: &Backend, key: &str) -> Vec<String> {
        store.spellings(&RemoteKey {
            key: normalize_key(key).to_owned(),
            written: key.to_owned(),
            store: None,
        })
    }

    #[test]
    fn keys_are_spelled_by_each_providers_rules() {
        let aws = backend(
            json!({"aws": {"service": "SecretsManager", "region": "r", "prefix": "prod/"}}),
        );
        assert_eq!(spelled(&aws, "db"), ["prod/db"]);
        let joined = backend(
            json!({"aws": {"service": "SecretsManager", "region": "r", "prefix": "team-a"}}),
        );
        assert_eq!(
            spelled(&joined, "/db"),
            ["team-a/db"],
            "the prefix meets the key as written"
        );
        assert_eq!(
            spelled(&aws, "arn:aws:secretsmanager:r:1:secret:other/db-Ab12Cd"),
            ["other/db", "other/db-Ab12Cd"]
        );
        assert_eq!(
            spelled(&aws, "arn:aws:secretsmanager:r:1:secret:app/api-tokens"),
            ["app/api", "app/api-tokens"],
            "a partial ARN keeps its whole name too"
        );
        let vault = backend(json!({"vault": {"server": "s", "path": "secret"}}));
        assert_eq!(spelled(&vault, "prod/db"), ["secret/prod/db"]);
        assert_eq!(spelled(&vault, "secret/prod/db"), ["secret/prod/db"]);
        assert_eq!(spelled(&vault, "secret/data/prod/db"), ["secret/prod/db"]);
        assert_eq!(
            spelled(&vault, "data/app"),
            ["secret/data/app"],
            "ESO reads secret/data/data/app: the logical secret data/app"
        );
        let no_mount = backend(json!({"vault": {"server": "s"}}));
        assert_eq!(spelled(&no_mount, "kv/data/prod/db"), ["kv/prod/db"]);
        assert_eq!(spelled(&no_mount, "kv/prod/db"), ["kv/prod/db"]);
        let v1 = backend(json!({"vault": {"server": "s", "path": "kv", "version": "v1"}}));
        assert_eq!(spelled(&v1, "data/x"), ["kv/data/x"]);
        assert_eq!(spelled(&v1, "kv/data/x"), ["kv/data/x"]);
        let azure = backend(json!({"azurekv": {"vaultUrl": "https://v.vault.azure.net"}}));
        assert_eq!(spelled(&azure, "secret/db"), ["db"]);
        assert_eq!(spelled(&azure, "cert/tls"), ["cert/tls"]);
        let gcp = backend(json!({"gcpsm": {"projectID": "p"}}));
        assert_eq!(
            spelled(&gcp, "projects/p/secrets/db/versions/latest"),
            ["db"]
        );
        assert_eq!(spelled(&gcp, "projects/p/locations/eu/secrets/db"), ["db"]);
        assert_eq!(spelled(&Backend::Akeyless, "/x/y"), ["x/y"]);
    }

    #[test]
    fn infisical_keys_with_slashes_name_their_folder() {
        let store = backend(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/"}}}),
        );
        let changed = |path: &str| Origin::Infisical {
            environment: "prod".into(),
            path: path.into(),
        };
        let key = |written: &str| RemoteKey {
            key: normalize_key(written).to_owned(),
            written: written.to_owned(),
            store: None,
        };
        assert!(!store.in_scope(&changed("/app")));
        assert!(store.key_in_scope(&key("/app/DB_PASS"), &changed("/app")));
        assert!(store.key_in_scope(&key("app/DB_PASS"), &changed("app/")));
        assert!(!store.key_in_scope(&key("DB_PASS"), &changed("/app")));
        let nested = backend(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/payments"}}}),
        );
        assert!(nested.key_in_scope(&key("cards/KEY"), &changed("/payments/cards")));
        assert!(!nested.key_in_scope(
            &key("cards/KEY"),
            &Origin::Infisical {
                environment: "dev".into(),
                path: "/payments/cards".into()
            }
        ));
    }

    #[test]
    fn accepts_only_its_provider_and_place() {
        let aws = |region: &str| Origin::Aws {
            region: Some(region.into()),
        };
        let store = backend(json!({"aws": {"service": "SecretsManager", "region": "eu-west-1"}}));
        assert!(store.accepts(&aws("eu-west-1")));
        assert!(store.accepts(&Origin::Aws { region: None }));
        assert!(!store.accepts(&aws("us-east-1")));
        assert!(!store.accepts(&Origin::Akeyless));
        let parameters =
            backend(json!({"aws": {"service": "ParameterStore", "region": "eu-west-1"}}));
        assert!(!parameters.accepts(&aws("eu-west-1")));

        let gcp = |project: &str| Origin::Gcp {
            project: Some(project.into()),
        };
        let store = backend(json!({"gcpsm": {"projectID": "shop-prod"}}));
        assert!(store.accepts(&gcp("shop-prod")));
        assert!(
            store.accepts(&gcp("123456")),
            "a number cannot be compared to an id"
        );
        assert!(!store.accepts(&gcp("shop-dev")));

        let store = backend(json!({"azurekv": {"vaultUrl": "https://kv-prod.vault.azure.net"}}));
        assert!(store.accepts(&Origin::Azure {
            vault: Some("KV-Prod".into())
        }));
        assert!(!store.accepts(&Origin::Azure {
            vault: Some("kv-dev".into())
        }));
        assert!(!Backend::Other("fake".into()).accepts(&Origin::Akeyless));
    }

    #[test]
    fn scopes_match_by_project_config_environment_and_folder() {
        let doppler = |project: &str, config: &str| Origin::Doppler {
            project: project.into(),
            config: config.into(),
        };
        let store = backend(json!({"doppler": {"project": "payments", "config": "prd"}}));
        assert!(store.in_scope(&doppler("payments", "prd")));
        assert!(!store.in_scope(&doppler("payments", "stg")));
        assert!(!store.in_scope(&doppler("web", "prd")));
        let token_bound = backend(json!({"doppler": {"auth": {}}}));
        assert!(token_bound.in_scope(&doppler("any", "thing")));

        let infisical = |environment: &str, path: &str| Origin::Infisical {
            environment: environment.into(),
            path: path.into(),
        };
        let store = backend(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/payments"}}}),
        );
        assert!(store.in_scope(&infisical("prod", "/payments")));
        assert!(store.in_scope(&infisical("prod", "payments/")));
        assert!(!store.in_scope(&infisical("prod", "/payments/sub")));
        assert!(!store.in_scope(&infisical("dev", "/payments")));
        let recursive = backend(
            json!({"infisical": {"secretsScope": {"projectSlug": "p", "environmentSlug": "prod", "secretsPath": "/", "recursive": true}}}),
        );
        assert!(recursive.in_scope(&infisical("prod", "/payments/sub")));
        assert!(!Backend::Akeyless.in_scope(&doppler("p", "c")));
    }

    #[test]
    fn store_references_resolve_to_namespace_or_cluster() {
        assert_eq!(
            StoreId::referenced("team-a", None, "s"),
            StoreId::namespaced("team-a", "s")
        );
        assert_eq!(
            StoreId::referenced("team-a", Some("ClusterSecretStore"), "s"),
            StoreId::cluster("s")
        );
        assert_eq!(StoreId::cluster("s").to_string(), "ClusterSecretStore s");
    }
}
