//! An ExternalSecret with a rule no change event can match is surfaced: a Warning Event on it,
//! the metric by reason, and `/readyz`'s list.

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_rule_no_event_can_match_is_reported_on_the_object_the_metric_and_readyz() {
    let Some(s) = Scenario::new("unmatchable", "base").await else {
        return;
    };
    let ns = s.namespace.as_str();
    s.store_in(ns).await;
    let mut tags = external_secret(ns, "by-tags", &s.store, &s.key("tagged", "v1"));
    tags["spec"]["dataFrom"] = json!([{"find": {"tags": {"team": "payments"}}}]);
    s.cluster.apply(tags).await;
    let mut regexp = external_secret(ns, "by-regexp", &s.store, &s.key("pattern", "v1"));
    regexp["spec"]["dataFrom"] = json!([{"find": {"name": {"regexp": "\\Qdb.password\\E"}}}]);
    s.cluster.apply(regexp).await;
    let service = s.service(&[]).await;

    for (name, reason) in [
        ("by-tags", "selects by tags only"),
        ("by-regexp", "regexp is invalid"),
    ] {
        wait_for("the Warning Event", || async {
            !s.cluster.events_about(ns, name).await.is_empty()
        })
        .await;
        let events = s.cluster.events_about(ns, name).await;
        assert_eq!(events.len(), 1, "once, not on every list: {events:#?}");
        assert_eq!(events[0]["type"], "Warning");
        assert_eq!(events[0]["reason"], "UnmatchableRule");
        let note = events[0]["note"].as_str().unwrap_or_default();
        assert!(note.contains(reason), "{note}");
    }
    assert!(
        service
            .metric("eso_refresher_unmatchable_rules{reason=\"tags_only\"}")
            .await
            >= 1.0
    );
    assert!(
        service
            .metric("eso_refresher_unmatchable_rules{reason=\"invalid_regexp\"}")
            .await
            >= 1.0
    );
    let ready: serde_json::Value = service
        .get("/readyz")
        .await
        .expect("readyz")
        .json()
        .await
        .expect("JSON");
    let listed: Vec<(String, String)> = ready["unmatchableRules"]["externalSecrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["namespace"] == ns)
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["reasons"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        sorted(listed),
        [
            ("by-regexp".to_owned(), r#"["invalid_regexp"]"#.to_owned()),
            ("by-tags".to_owned(), r#"["tags_only"]"#.to_owned()),
        ],
        "{ready}"
    );
}
