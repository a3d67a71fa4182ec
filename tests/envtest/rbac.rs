//! The namespaced overlay: Roles in the watched namespaces only, as rendered, are enough.

use crate::support::*;

#[tokio::test]
async fn the_namespaced_overlay_refreshes_its_namespaces_with_its_roles_only() {
    let Some(s) = Scenario::new("roles", "overlays/namespaced").await else {
        return;
    };
    let rendered = render("overlays/namespaced");
    let deployment = rendered
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("a Deployment");
    let watched = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "WATCH_NAMESPACES")
        .and_then(|e| e["value"].as_str())
        .expect("the overlay sets WATCH_NAMESPACES")
        .to_owned();
    let inside = watched.split(',').next().expect("a namespace").to_owned();
    let key = s.key("scoped", "v1");
    // The watched namespaces are shared by every run: names of this test's own.
    let (store, name) = (s.tag.clone(), s.tag.clone());
    s.cluster
        .apply(secret_store(&inside, &store, s.manager.provider()))
        .await;
    s.store_in(&s.namespace).await;
    s.synced(&[
        (external_secret(&inside, &name, &store, &key), "v1"),
        (
            external_secret(&s.namespace, "outside", &s.store, &key),
            "v1",
        ),
    ])
    .await;
    let audit_from = s.cluster.audit_offset();
    let service = s.service(&[("WATCH_NAMESPACES", &watched)]).await;

    s.manager.set(&key, "v2");
    let (status, _, answer) = service.generic(&[&key]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(refreshed(&answer), [format!("{inside}/{name}")], "{answer}");
    s.cluster
        .wait_for_value(&inside, &name, "value", "v2")
        .await;
    wait_for("the Event", || async {
        !s.cluster.events_about(&inside, &name).await.is_empty()
    })
    .await;
    let refused: Vec<_> = s
        .cluster
        .audit_since(&s.identity.username, audit_from)
        .into_iter()
        .filter(|r| r.code == 403)
        .collect();
    // ClusterSecretStores cannot be read with Roles: the one probe is refused, and said so.
    assert!(
        refused.iter().all(|r| r.resource == "clustersecretstores"),
        "{refused:#?}"
    );
    assert_eq!(
        s.cluster
            .secret_value(&s.namespace, "outside", "value")
            .await
            .as_deref(),
        Some("v1")
    );
}
