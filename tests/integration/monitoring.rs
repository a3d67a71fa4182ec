//! The monitoring kit (`kustomize/components/monitoring`) reads only what the service exports:
//! every PromQL expression of its alerts and of its dashboard is parsed, and every metric it
//! selects must be in `/metrics` of a running service that has done what each metric counts.
//! (`tests/deploy/monitoring.rs` checks that these files are what renders.)

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;

use crate::support::*;

const COMPONENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/kustomize/components/monitoring"
);

/// The metric names a PromQL expression selects.
fn metrics_of(expr: &str) -> Result<BTreeSet<String>, String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(selector) => selector,
                Expr::MatrixSelector(matrix) => &matrix.vs,
                _ => return Ok(true),
            };
            let name = selector.name.clone().ok_or("a selector names no metric")?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let parsed = parser::parse(expr)?;
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed)?;
    Ok(names.0)
}

/// A Grafana query as PromQL: its interval variables become a duration. (Its other variables
/// stand in label matchers' strings, which PromQL takes as they are.)
fn from_grafana(query: &str) -> String {
    ["$__rate_interval", "$__interval", "$__range"]
        .iter()
        .fold(query.to_owned(), |query, variable| {
            query.replace(variable, "5m")
        })
}

/// The samples an OpenMetrics text can hold, from its `# TYPE` lines: a counter `x` is
/// sampled as `x_total`, a histogram as `x_bucket`, `x_sum` and `x_count`, and so on.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(declared) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (name, kind) = declared.split_once(' ').expect("# TYPE <name> <type>");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "gauge" | "unknown" | "stateset" => &[""],
            "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
            "summary" => &["", "_sum", "_count", "_created"],
            "info" => &["_info"],
            other => panic!("OpenMetrics type {other}"),
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

/// Every PromQL expression of the PrometheusRule, by alert.
fn alert_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(COMPONENT).join("prometheusrule.yaml")).unwrap();
    let rule: Value = serde_saphyr::from_str(&text).unwrap();
    let mut found = Vec::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap();
            found.push((name.to_owned(), rule["expr"].as_str().unwrap().to_owned()));
        }
    }
    found
}

/// Every query of the dashboard, by panel (and variable), in PromQL.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(Path::new(COMPONENT).join("dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {title} queries nothing");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            found.push((format!("panel {title}"), from_grafana(expr)));
        }
    }
    // label_values(<series selector>, <label>): the selector is PromQL.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(query) = variable["query"]["query"].as_str() else {
            continue;
        };
        let selector = query
            .strip_prefix("label_values(")
            .and_then(|rest| rest.rsplit_once(','))
            .map(|(selector, _)| selector)
            .unwrap_or_else(|| panic!("variable query {query}: read it here"));
        found.push((
            format!("variable {}", variable["name"]),
            selector.to_owned(),
        ));
    }
    found
}

#[test]
fn metric_names_are_read_from_promql_and_openmetrics() {
    assert_eq!(
        metrics_of(r#"sum by (le) (rate(a_bucket{x="$y"}[5m])) / on() b > 0 or absent(c)"#),
        Ok(["a_bucket", "b", "c"]
            .into_iter()
            .map(String::from)
            .collect())
    );
    assert!(metrics_of("sum(rate(x[$__rate_interval]))").is_err());
    assert!(metrics_of(&from_grafana("sum(rate(x[$__rate_interval]))")).is_ok());
    assert!(metrics_of(r#"{job="x"}"#).is_err(), "no metric name");
    let text = "# TYPE a counter\n# TYPE b histogram\n# TYPE c gauge\na_total 1\n# EOF\n";
    let names = exported(text);
    for name in ["a_total", "b_bucket", "b_count", "c"] {
        assert!(names.contains(name), "{name}");
    }
    assert!(!names.contains("a") && !names.contains("b"));
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    // A service that has done what every metric counts: refreshed, skipped, failed to patch,
    // seen a re-delivery, refused credentials until it throttled, and followed a refresh that
    // ESO (absent here) never confirms.
    let api = FakeApiServer::start().await;
    for object in [
        external_secret("m", "ok").with_key("/ok"),
        external_secret("m", "once")
            .with_key("/ok")
            .refresh_policy("CreatedOnce"),
        external_secret("m", "failing").with_key("/failing"),
    ] {
        api.apply(object.build());
    }
    api.fail("PATCH", "/externalsecrets/failing", 403, 1000);
    let mut config = config();
    config.confirm_timeout = Some(Duration::from_millis(200));
    config.auth_failures_per_minute = 1;
    let app = spawn_ready(&api, config).await;
    let delivery = akeyless_events(&["/ok"]);
    for _ in 0..2 {
        assert_eq!(app.webhook(&delivery).await.0, 200);
    }
    assert_eq!(app.webhook(&akeyless_events(&["/failing"])).await.0, 503);
    for _ in 0..2 {
        app.http
            .post(format!("{}/webhook", app.url))
            .basic_auth(USER, Some("wrong"))
            .body("[]")
            .send()
            .await
            .unwrap();
    }
    wait_for("the refresh to time out unconfirmed", || async {
        let text = app.get("/metrics").await.text().await.unwrap();
        text.contains(r#"eso_refresher_confirmations_total{outcome="timeout"} 1"#)
    })
    .await;
    let text = app.get("/metrics").await.text().await.unwrap();
    let exported = exported(&text);

    let alerts = alert_expressions();
    let queries = dashboard_queries();
    assert!(alerts.len() >= 6 && queries.len() >= 12);
    let mut used = BTreeSet::new();
    for (place, expr) in alerts.iter().chain(&queries) {
        let metrics = metrics_of(expr).unwrap_or_else(|e| panic!("{place}: {e}\n{expr}"));
        assert!(!metrics.is_empty(), "{place} reads no metric: {expr}");
        for metric in metrics {
            assert!(
                exported.contains(&metric),
                "{place} reads {metric}, which /metrics does not export:\n{text}"
            );
            used.insert(metric);
        }
    }
    // The alerts of the kit, each on the metric it is about.
    for (alert, metric) in [
        (
            "EsoRefresherWebhookErrors",
            "eso_refresher_http_requests_total",
        ),
        (
            "EsoRefresherPatchFailures",
            "eso_refresher_patch_failures_total",
        ),
        ("EsoRefresherNotReady", "eso_refresher_ready"),
        (
            "EsoRefresherAuthFailureBurst",
            "eso_refresher_auth_failures_total",
        ),
        (
            "EsoRefresherUnconfirmedRefreshes",
            "eso_refresher_confirmations_total",
        ),
        (
            "EsoRefresherUnmatchableRules",
            "eso_refresher_unmatchable_rules",
        ),
        (
            "EsoRefresherLogLinesDropped",
            "eso_refresher_log_lines_dropped_total",
        ),
    ] {
        let (_, expr) = alerts
            .iter()
            .find(|(name, _)| name == alert)
            .unwrap_or_else(|| panic!("alert {alert}"));
        assert!(
            metrics_of(expr).unwrap().contains(metric),
            "{alert}: {expr}"
        );
    }
    assert!(used.len() >= 12, "{used:?}");
}
