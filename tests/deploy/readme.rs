//! What README.md says about the manifests, between `<!-- name -->` and `<!-- /name -->`
//! markers, against what the overlays render: the permissions as a set, the Ingress and the
//! NetworkPolicy as the exact text their objects describe (a failure prints the text to paste).

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::ingress::described_paths;
use super::{OVERLAYS, ROOT, find, one, render, tool};

/// The README's text between `<!-- name -->` and `<!-- /name -->`, which appear once each.
pub(super) fn passage(readme: &str, name: &str) -> String {
    let (open, close) = (format!("<!-- {name} -->"), format!("<!-- /{name} -->"));
    assert_eq!(readme.matches(&open).count(), 1, "README.md: one {open}");
    let (_, after) = readme.split_once(&open).expect("opening marker");
    let (inside, _) = after
        .split_once(&close)
        .unwrap_or_else(|| panic!("README.md: {close} after {open}"));
    inside.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(super) fn readme() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("README.md")).expect("README.md")
}

pub(super) fn backticked(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// `get/list on `a.group` and `b.group`; create on `c``: each verb with each resource.
fn permissions_said(text: &str) -> BTreeSet<(String, String)> {
    let mut said = BTreeSet::new();
    for part in text.split(';') {
        let (verbs, resources) = part
            .split_once(" on ")
            .unwrap_or_else(|| panic!("`verbs on resources`: {part}"));
        let resources = backticked(resources);
        assert!(!resources.is_empty(), "no `resource` in {part}");
        for verb in verbs.trim().split('/') {
            assert!(
                verb.chars().all(|c| c.is_ascii_lowercase()),
                "verb {verb:?}"
            );
            for resource in &resources {
                said.insert((verb.to_owned(), resource.clone()));
            }
        }
    }
    said
}

/// Each verb of a role's rules with each `resource.group` (a bare resource for the core group).
fn permissions_granted(role: &Value) -> BTreeSet<(String, String)> {
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().expect("rules") {
        let strings = |field: &str| -> Vec<String> {
            rule[field]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect()
        };
        for group in strings("apiGroups") {
            for resource in strings("resources") {
                for verb in strings("verbs") {
                    let qualified = match group.as_str() {
                        "" => resource.clone(),
                        group => format!("{resource}.{group}"),
                    };
                    granted.insert((verb, qualified));
                }
            }
        }
    }
    granted
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: Vec<String>) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

fn ports(rule: &Value) -> String {
    let ports: Vec<String> = rule["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p["port"]
                .as_str()
                .map_or_else(|| p["port"].to_string(), str::to_owned);
            format!("`{port}/{}`", p["protocol"].as_str().unwrap_or("TCP"))
        })
        .collect();
    if ports.is_empty() {
        "any port".to_owned()
    } else {
        and_list(ports)
    }
}

/// The peers of a NetworkPolicy rule: whole namespaces by name, or labelled pods in one.
fn peers(peers: &[Value]) -> String {
    let mut namespaces = Vec::new();
    let mut others = Vec::new();
    for peer in peers {
        let labels = peer["namespaceSelector"]["matchLabels"].as_object();
        let namespace = labels
            .filter(|l| {
                l.len() == 1 && peer["namespaceSelector"].as_object().map(|s| s.len()) == Some(1)
            })
            .and_then(|l| l.get("kubernetes.io/metadata.name"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("describe this peer in the README and here: {peer}"));
        match peer.get("podSelector") {
            None => namespaces.push(format!("`{namespace}`")),
            Some(pods) => {
                let labels: Vec<String> = pods["matchLabels"]
                    .as_object()
                    .filter(|_| pods.as_object().map(|s| s.len()) == Some(1))
                    .unwrap_or_else(|| panic!("describe this peer in the README and here: {peer}"))
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().expect("label value")))
                    .collect();
                others.push(format!(
                    "the pods labelled `{}` in `{namespace}`",
                    labels.join(",")
                ));
            }
        }
    }
    let mut all = Vec::new();
    match namespaces.len() {
        0 => {}
        1 => all.push(format!("the namespace {}", namespaces[0])),
        _ => all.push(format!("the namespaces {}", and_list(namespaces))),
    }
    all.extend(others);
    and_list(all)
}

/// What a NetworkPolicy lets in and out, in the README's words.
fn describe_network_policy(policy: &Value) -> String {
    let spec = &policy["spec"];
    let types = spec["policyTypes"].as_array().expect("policyTypes");
    let mut parts = Vec::new();
    if types.iter().any(|t| t == "Ingress") {
        let rules = spec["ingress"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if rules.is_empty() {
            parts.push("no requests".to_owned());
        }
        for rule in rules {
            let from = match rule["from"].as_array() {
                Some(from) if !from.is_empty() => format!("only from {}", peers(from)),
                _ => "from anywhere".to_owned(),
            };
            parts.push(format!("requests to {} {from}", ports(rule)));
        }
    }
    if types.iter().any(|t| t == "Egress") {
        let rules = spec["egress"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let egress: Vec<String> = rules
            .iter()
            .map(|rule| {
                let to = match rule["to"].as_array() {
                    Some(to) if !to.is_empty() => format!("of {}", peers(to)),
                    _ => "at any address".to_owned(),
                };
                format!("{} {to}", ports(rule))
            })
            .collect();
        parts.push(match egress.is_empty() {
            true => "no egress".to_owned(),
            false => format!("egress only to {}", egress.join(", and to ")),
        });
    }
    parts.join("; ")
}

/// An object in the README's words.
type Describe = fn(&Value) -> String;

/// What an Ingress routes, in the README's words.
fn describe_ingress_paths(ingress: &Value) -> String {
    let mut described = Vec::new();
    for rule in ingress["spec"]["rules"].as_array().expect("rules") {
        for path in rule["http"]["paths"].as_array().into_iter().flatten() {
            let at = path["path"].as_str().expect("path");
            described.push(match path["pathType"].as_str() {
                Some("Prefix") => format!("`{at}` and every path below it"),
                Some("Exact") => format!("`{at}` only"),
                other => panic!("pathType {other:?}: describe it in the README and here"),
            });
        }
    }
    and_list(described)
}

#[test]
fn the_readme_names_the_permissions_the_roles_grant() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let readme = readme();
    let base = render(&kubectl, "base");
    assert_eq!(
        permissions_said(&passage(&readme, "permissions")),
        permissions_granted(one(&base, "ClusterRole")),
        "README.md <!-- permissions --> against the base's ClusterRole"
    );
    let namespaced = render(&kubectl, "overlays/namespaced");
    let said = permissions_said(&passage(&readme, "namespaced-permissions"));
    let roles = find(&namespaced, "Role");
    assert!(!roles.is_empty());
    for role in roles {
        assert_eq!(
            said,
            permissions_granted(role),
            "README.md <!-- namespaced-permissions --> against the Role in {}",
            role["metadata"]["namespace"]
        );
    }
}

#[test]
fn the_readme_says_what_the_ingress_and_the_network_policy_let_through() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    let readme = readme();
    let passages: [(&str, &str, Describe); 2] = [
        ("ingress-paths", "Ingress", describe_ingress_paths),
        ("network-policy", "NetworkPolicy", describe_network_policy),
    ];
    let mut described = BTreeSet::new();
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        for (name, kind, describe) in passages {
            for object in find(&objects, kind) {
                assert_eq!(
                    passage(&readme, name),
                    describe(object),
                    "README.md <!-- {name} --> against the {kind} of {overlay}"
                );
                described.insert(kind);
            }
        }
    }
    assert_eq!(described.len(), passages.len(), "{described:?}");
    let openapi = eso_refresher::http::openapi_document();
    let internal: BTreeSet<String> = described_paths(&serde_json::from_str(openapi).unwrap())
        .into_iter()
        .filter_map(|(path, internal)| internal.then_some(path))
        .collect();
    assert_eq!(
        backticked(&passage(&readme, "internal-routes")),
        internal,
        "README.md <!-- internal-routes --> against the x-internal routes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn permissions_are_read_as_verb_resource_pairs() {
        let said = permissions_said("get/list on `a.x` and `b.x` (why); create on `events`");
        let pairs: Vec<(&str, &str)> = said.iter().map(|(v, r)| (v.as_str(), r.as_str())).collect();
        assert_eq!(
            pairs,
            [
                ("create", "events"),
                ("get", "a.x"),
                ("get", "b.x"),
                ("list", "a.x"),
                ("list", "b.x")
            ]
        );
        let role = json!({"rules": [
            {"apiGroups": ["x"], "resources": ["a", "b"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        ]});
        assert_eq!(permissions_granted(&role), said);
        assert_ne!(
            permissions_said("get on `a.x` and `b.x`; create on `events`"),
            permissions_granted(&role)
        );
    }

    #[test]
    fn a_passage_is_found_between_its_markers_once() {
        let text = "a <!-- p -->one\n  two<!-- /p --> b";
        assert_eq!(passage(text, "p"), "one two");
        assert!(std::panic::catch_unwind(|| passage("<!-- p -->x", "p")).is_err());
        assert!(std::panic::catch_unwind(|| passage(text, "q")).is_err());
    }

    #[test]
    fn a_network_policy_is_described_rule_by_rule() {
        let policy = json!({"spec": {
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": [
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "a"}}},
                    {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "b"}}},
                ],
                "ports": [{"port": "http", "protocol": "TCP"}],
            }],
            "egress": [
                {"to": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "s"}},
                    "podSelector": {"matchLabels": {"app": "dns"}},
                }], "ports": [{"port": 53, "protocol": "UDP"}]},
                {"ports": [{"port": 443}]},
            ],
        }});
        assert_eq!(
            describe_network_policy(&policy),
            "requests to `http/TCP` only from the namespaces `a` and `b`; egress only to \
             `53/UDP` of the pods labelled `app=dns` in `s`, and to `443/TCP` at any address"
        );
        let closed = json!({"spec": {"policyTypes": ["Egress"]}});
        assert_eq!(describe_network_policy(&closed), "no egress");
    }
}
