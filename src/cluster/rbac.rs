//! The least-privilege RBAC the service needs for a given scope, printed by
//! `eso-refresher rbac`: the manifests in kustomize/ are checked against it.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::cluster::watch::GROUP;

pub const NAME: &str = "eso-refresher";

fn rule(resources: &[&str], verbs: &[&str]) -> PolicyRule {
    rule_in(GROUP, resources, verbs)
}

fn rule_in(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// What the watches, the patches and the Events about them need in one namespace: nothing on
/// Secrets. SecretStores are read to tell which provider each ExternalSecret uses.
pub fn namespaced_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["externalsecrets"], &["list", "watch", "patch"]),
        rule_in("events.k8s.io", &["events"], &["create"]),
        rule(&["secretstores"], &["list", "watch"]),
    ]
}

/// Cluster-wide, plus patching ClusterExternalSecrets' force-sync annotation and reading
/// ClusterSecretStores.
pub fn cluster_rules() -> Vec<PolicyRule> {
    let mut rules = namespaced_rules();
    rules.push(rule(&["clusterexternalsecrets"], &["patch"]));
    rules.push(rule(&["clustersecretstores"], &["list", "watch"]));
    rules
}

fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some([("app.kubernetes.io/name".to_owned(), NAME.to_owned())].into()),
        ..ObjectMeta::default()
    }
}

fn subject(service_account: &str, namespace: &str) -> Vec<Subject> {
    vec![Subject {
        kind: "ServiceAccount".into(),
        name: service_account.to_owned(),
        namespace: Some(namespace.to_owned()),
        ..Subject::default()
    }]
}

/// The ServiceAccount and its grants: a ClusterRole when `namespaces` is empty (the whole
/// cluster is watched), else a Role and RoleBinding in each namespace. ExternalSecrets owned by
/// a ClusterExternalSecret can only be refreshed with the cluster-wide grant.
pub fn manifests(namespaces: &[String], service_account: &str, namespace: &str) -> Vec<Value> {
    let mut objects = vec![to_value(&ServiceAccount {
        metadata: meta(service_account, Some(namespace)),
        ..ServiceAccount::default()
    })];
    if namespaces.is_empty() {
        objects.push(to_value(&ClusterRole {
            metadata: meta(NAME, None),
            rules: Some(cluster_rules()),
            ..ClusterRole::default()
        }));
        objects.push(to_value(&ClusterRoleBinding {
            metadata: meta(NAME, None),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: NAME.into(),
            },
            subjects: Some(subject(service_account, namespace)),
        }));
    }
    for watched in namespaces {
        objects.push(to_value(&Role {
            metadata: meta(NAME, Some(watched)),
            rules: Some(namespaced_rules()),
        }));
        objects.push(to_value(&RoleBinding {
            metadata: meta(NAME, Some(watched)),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "Role".into(),
                name: NAME.into(),
            },
            subjects: Some(subject(service_account, namespace)),
        }));
    }
    objects
}

fn to_value<T: serde::Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The objects as one multi-document YAML text.
pub fn to_yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .filter_map(|object| serde_saphyr::to_string(object).ok())
        .map(|doc| format!("---\n{doc}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(objects: &[Value]) -> Vec<String> {
        objects
            .iter()
            .map(|o| {
                let ns = o["metadata"]["namespace"].as_str().unwrap_or("-");
                format!(
                    "{} {ns}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn cluster_scope_is_one_cluster_role() {
        let objects = manifests(&[], "eso-refresher", "platform");
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount platform/eso-refresher",
                "ClusterRole -/eso-refresher",
                "ClusterRoleBinding -/eso-refresher"
            ]
        );
        let rules = &objects[1]["rules"];
        assert_eq!(
            rules[0]["resources"],
            serde_json::json!(["externalsecrets"])
        );
        assert_eq!(
            rules[0]["verbs"],
            serde_json::json!(["list", "watch", "patch"])
        );
        assert_eq!(rules[1]["apiGroups"], serde_json::json!(["events.k8s.io"]));
        assert_eq!(rules[1]["verbs"], serde_json::json!(["create"]));
        assert_eq!(rules[2]["resources"], serde_json::json!(["secretstores"]));
        assert_eq!(rules[2]["verbs"], serde_json::json!(["list", "watch"]));
        assert_eq!(
            rules[3]["resources"],
            serde_json::json!(["clusterexternalsecrets"])
        );
        assert_eq!(rules[3]["verbs"], serde_json::json!(["patch"]));
        assert_eq!(
            rules[4]["resources"],
            serde_json::json!(["clustersecretstores"])
        );
        assert_eq!(objects[2]["subjects"][0]["namespace"], "platform");
    }

    #[test]
    fn namespaced_scope_is_roles_only() {
        let objects = manifests(&["a".into(), "b".into()], "sa", "platform");
        assert_eq!(
            kinds(&objects),
            [
                "ServiceAccount platform/sa",
                "Role a/eso-refresher",
                "RoleBinding a/eso-refresher",
                "Role b/eso-refresher",
                "RoleBinding b/eso-refresher"
            ]
        );
    }

    #[test]
    fn nothing_is_granted_on_secrets() {
        for rules in [cluster_rules(), namespaced_rules()] {
            for rule in rules {
                let resources = rule.resources.unwrap_or_default();
                assert!(
                    !resources.iter().any(|r| r == "secrets" || r == "*"),
                    "{resources:?}"
                );
                assert!(
                    !rule
                        .verbs
                        .iter()
                        .any(|v| v == "*" || v == "update" || v == "delete")
                );
            }
        }
        let yaml = to_yaml(&manifests(&[], NAME, NAME));
        assert!(
            yaml.starts_with("---\napiVersion: v1\nkind: ServiceAccount"),
            "{yaml}"
        );
        let parsed = crate::cluster::manifests::parse_documents(&yaml).expect("valid YAML");
        assert_eq!(parsed.len(), 3);
    }
}
