//! A ClusterExternalSecret's children are refreshed through the parent's force-sync
//! annotation, which the real ESO copies to each of them; and the shipped ClusterRole is
//! exactly what the service uses.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn children_resync_through_the_parent_and_the_cluster_role_is_exactly_what_is_used() {
    let Some(s) = Scenario::new("ces", "base").await else {
        return;
    };
    let audit_from = s.cluster.audit_offset();
    let tag = s.tag.as_str();
    let key = s.key("fanout", "v1");
    s.cluster
        .apply(
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": tag}, "spec": {"provider": s.manager.provider()}}),
        )
        .await;
    let children = [format!("{tag}-a"), format!("{tag}-b")];
    for namespace in &children {
        s.cluster
            .namespace(namespace, json!({"e2e-ces": tag}))
            .await;
    }
    s.cluster
        .apply(
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": tag},
            "spec": {
                "namespaceSelectors": [{"matchLabels": {"e2e-ces": tag}}],
                "externalSecretName": "child",
                "externalSecretSpec": {
                    "refreshInterval": "1h",
                    "secretStoreRef": {"name": tag, "kind": "ClusterSecretStore"},
                    "target": {"name": "child"},
                    "data": [{"secretKey": "value", "remoteRef": {"key": key}}],
                },
            }}),
        )
        .await;
    // A plain ExternalSecret reading the same key, from the same ClusterSecretStore.
    let mut plain = external_secret(&s.namespace, "plain", tag, &key);
    plain["spec"]["secretStoreRef"]["kind"] = json!("ClusterSecretStore");
    s.synced(&[(plain, "v1")]).await;
    for namespace in &children {
        s.cluster
            .wait_for_value(namespace, "child", "value", "v1")
            .await;
    }
    let service = s.service(&[("CONFIRM_TIMEOUT", "20s")]).await;

    s.manager.set(&key, "v2");
    let (status, _, answer) = service.generic(&[&key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        sorted(refreshed(&answer)),
        sorted([tag.to_owned(), format!("{}/plain", s.namespace)]),
        "{answer}"
    );
    let parent = answer["refreshed"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["kind"] == "ClusterExternalSecret")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        parent["via"],
        json!(
            children
                .iter()
                .map(|n| format!("{n}/child"))
                .collect::<Vec<_>>()
        ),
        "{answer}"
    );
    for namespace in &children {
        s.cluster
            .wait_for_value(namespace, "child", "value", "v2")
            .await;
    }
    s.cluster
        .wait_for_value(&s.namespace, "plain", "value", "v2")
        .await;

    // Each child and the plain one are confirmed; the parent's Event is in `default`.
    wait_for("three confirmations", || async {
        service
            .metric(r#"eso_refresher_confirmations_total{outcome="confirmed"}"#)
            .await
            >= 3.0
    })
    .await;
    let mut confirmed: Vec<String> = service
        .logged("refresh confirmed")
        .iter()
        .map(|line| {
            line["external_secret"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    confirmed.sort();
    let mut expected: Vec<String> = children.iter().map(|n| format!("{n}/child")).collect();
    expected.push(format!("{}/plain", s.namespace));
    expected.sort();
    assert_eq!(confirmed, expected);
    wait_for("the Event about the ClusterExternalSecret", || async {
        !s.cluster.events_about("default", tag).await.is_empty()
    })
    .await;
    wait_for("the Event about plain", || async {
        !s.cluster
            .events_about(&s.namespace, "plain")
            .await
            .is_empty()
    })
    .await;

    // Everything the shipped ClusterRole grants was used, and nothing else was asked for.
    let requests = s.cluster.audit_since(&s.identity.username, audit_from);
    let refused: Vec<_> = requests.iter().filter(|r| r.code == 403).collect();
    assert!(refused.is_empty(), "refused: {refused:#?}");
    let used: Vec<(String, String, String)> = sorted(
        requests
            .iter()
            .filter(|r| !r.resource.is_empty())
            .map(|r| (r.group.clone(), r.resource.clone(), r.verb.clone())),
    );
    let granted: Vec<(String, String, String)> = sorted(
        s.identity
            .granted
            .iter()
            .map(|g| (g.group.clone(), g.resource.clone(), g.verb.clone())),
    );
    assert_eq!(used, granted, "used (left) and granted (right) differ");
}
