//! The monitoring component as `overlays/monitoring` renders it: the ServiceMonitor scrapes the
//! Service's metrics route, every alert has a severity, a wait and a runbook line, the Grafana
//! dashboard is a ConfigMap its sidecar loads, and all of it is the component's files as they
//! are (the integration tier checks that every metric those files read is exported).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::readme::{backticked, passage, readme};
use super::{ROOT, find, one, render, tool};

const COMPONENT: &str = "kustomize/components/monitoring";

fn component_file(name: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(COMPONENT).join(name)).expect(name)
}

/// kubectl, and `overlays/monitoring` as it renders; `None` (said) without kubectl.
fn rendered() -> Option<(PathBuf, Vec<Value>)> {
    let kubectl = tool("kubectl")?;
    let objects = render(&kubectl, "overlays/monitoring");
    Some((kubectl, objects))
}

fn without_kinds(objects: &[Value], kinds: &[&str]) -> Vec<Value> {
    let mut kept: Vec<Value> = objects
        .iter()
        .filter(|o| !kinds.contains(&o["kind"].as_str().unwrap_or_default()))
        .cloned()
        .collect();
    kept.sort_by_key(|o| format!("{} {}", o["kind"], o["metadata"]["name"]));
    kept
}

#[test]
fn the_service_monitor_scrapes_the_metrics_route_of_the_service() {
    let Some((kubectl, objects)) = rendered() else {
        return;
    };
    let monitor = one(&objects, "ServiceMonitor");
    let service = one(&objects, "Service");
    assert_eq!(
        monitor["metadata"]["namespace"],
        service["metadata"]["namespace"]
    );
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels");
    assert!(!selector.is_empty());
    for (key, value) in selector {
        assert_eq!(&service["metadata"]["labels"][key], value, "label {key}");
    }
    let ports: Vec<&Value> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["name"])
        .collect();
    let endpoints = monitor["spec"]["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 1);
    assert!(ports.contains(&&endpoints[0]["port"]), "{ports:?}");
    assert_eq!(endpoints[0]["path"], "/metrics");
    assert!(eso_refresher::http::ROUTES.contains(&("GET", "/metrics")));

    // The component adds its three objects, in the service's namespace, and changes nothing
    // else of the base.
    let base = render(&kubectl, "base");
    let added = ["ServiceMonitor", "PrometheusRule"];
    let dashboards: Vec<&Value> = find(&objects, "ConfigMap")
        .into_iter()
        .filter(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .collect();
    assert_eq!(dashboards.len(), 1);
    for object in [one(&objects, "PrometheusRule"), dashboards[0]] {
        assert_eq!(
            object["metadata"]["namespace"], service["metadata"]["namespace"],
            "{}",
            object["kind"]
        );
    }
    let rest: Vec<Value> = without_kinds(&objects, &added)
        .into_iter()
        .filter(|o| o != dashboards[0])
        .collect();
    assert_eq!(rest, without_kinds(&base, &[]));
}

#[test]
fn every_alert_has_a_severity_a_wait_and_a_runbook_and_the_readme_names_them() {
    let Some((_, objects)) = rendered() else {
        return;
    };
    let rule = one(&objects, "PrometheusRule");
    let file: Value = serde_saphyr::from_str(&component_file("prometheusrule.yaml")).unwrap();
    assert_eq!(rule["spec"], file["spec"], "rendered as written");
    let mut alerts = BTreeSet::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            let alert = rule["alert"].as_str().expect("alerts only");
            assert!(alerts.insert(alert.to_owned()), "{alert} twice");
            assert!(
                ["critical", "warning", "info"]
                    .contains(&rule["labels"]["severity"].as_str().unwrap_or_default()),
                "{alert}: severity"
            );
            let wait = rule["for"].as_str().unwrap_or_default();
            assert!(
                humantime::parse_duration(wait).is_ok_and(|d| !d.is_zero()),
                "{alert}: for {wait:?}"
            );
            for annotation in ["summary", "description", "runbook"] {
                let text = rule["annotations"][annotation].as_str().unwrap_or_default();
                assert!(text.len() > 20, "{alert}: {annotation} {text:?}");
            }
        }
    }
    assert_eq!(
        backticked(&passage(&readme(), "alerts")),
        alerts,
        "README.md <!-- alerts --> against the PrometheusRule"
    );
}

#[test]
fn the_dashboard_is_a_config_map_for_grafanas_sidecar() {
    let Some((_, objects)) = rendered() else {
        return;
    };
    let dashboard = find(&objects, "ConfigMap")
        .into_iter()
        .find(|c| c["metadata"]["labels"]["grafana_dashboard"] == "1")
        .expect("a ConfigMap labelled grafana_dashboard: \"1\"");
    let name = dashboard["metadata"]["name"].as_str().unwrap();
    assert_eq!(name, "eso-refresher-dashboard", "a fixed name");
    let data = dashboard["data"].as_object().unwrap();
    assert_eq!(data.len(), 1);
    let (file, json) = data.iter().next().unwrap();
    assert!(file.ends_with(".json"), "{file}");
    let rendered: Value = serde_json::from_str(json.as_str().unwrap()).expect("JSON");
    let written: Value = serde_json::from_str(&component_file("dashboard.json")).unwrap();
    assert_eq!(rendered, written);
    assert!(rendered["uid"].is_string() && rendered["title"].is_string());
    let panels = rendered["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    for panel in panels {
        assert!(ids.insert(panel["id"].as_u64().expect("id")), "{panel}");
        for field in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][field].is_u64(),
                "{}: {field}",
                panel["title"]
            );
        }
    }
}
