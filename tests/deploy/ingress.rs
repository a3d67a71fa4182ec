//! Every route of the OpenAPI description against every Ingress an overlay ships, with the path
//! matching Kubernetes documents for networking.k8s.io/v1: a route is reachable when the path
//! the Ingress picks for it sends it to the service. Operations marked `x-internal: true` (health,
//! readiness, metrics, the description itself) must not be reachable; every other route must be.

use serde_json::Value;

use super::{OVERLAYS, find, render, tool};

fn elements(path: &str) -> Vec<&str> {
    path.split('/').filter(|e| !e.is_empty()).collect()
}

/// Whether an Ingress path of this type matches a request path. Exact: the whole path, case
/// sensitive. Prefix: element-wise, the paths split on `/`, so `/foo` matches `/foo`, `/foo/`
/// and `/foo/bar` but not `/foobar`, and a trailing `/` makes no difference.
/// ImplementationSpecific is up to the ingress class: refused.
pub fn path_matches(path_type: &str, path: &str, request: &str) -> bool {
    match path_type {
        "Exact" => path == request,
        "Prefix" => elements(request).starts_with(&elements(path)),
        other => {
            panic!("pathType {other}: its matching is up to the ingress class; use Exact or Prefix")
        }
    }
}

/// The backend a rule sends a request path to: of the matching paths the longest, an Exact one
/// before a Prefix one of the same length; with none, the Ingress's default backend, if any.
pub fn backend_for<'a>(ingress: &'a Value, rule: &'a Value, request: &str) -> Option<&'a Value> {
    let paths = rule["http"]["paths"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    paths
        .iter()
        .filter(|p| {
            let path_type = p["pathType"].as_str().expect("pathType");
            path_matches(path_type, p["path"].as_str().expect("path"), request)
        })
        .max_by_key(|p| (p["path"].as_str().map(str::len), p["pathType"] == "Exact"))
        .map(|p| &p["backend"])
        .or_else(|| ingress["spec"].get("defaultBackend"))
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The OpenAPI description's paths, each template (`{provider}`) expanded to every value its
/// parameter's enum allows, with whether the path's operations are marked `x-internal`.
pub fn described_paths(openapi: &Value) -> Vec<(String, bool)> {
    let mut result = Vec::new();
    for (template, item) in openapi["paths"].as_object().expect("paths") {
        let operations: Vec<&Value> = METHODS.iter().filter_map(|m| item.get(*m)).collect();
        let internal = operations
            .iter()
            .filter(|o| o["x-internal"] == true)
            .count();
        assert!(
            internal == 0 || internal == operations.len(),
            "{template}: an Ingress routes paths, not methods; mark all its operations or none"
        );
        let mut paths = vec![template.clone()];
        while let Some(start) = paths[0].find('{') {
            let end = paths[0][start..].find('}').expect("closing }") + start;
            let name = paths[0][start + 1..end].to_owned();
            let values: Vec<String> = operations
                .iter()
                .flat_map(|o| o["parameters"].as_array().into_iter().flatten())
                .chain(item["parameters"].as_array().into_iter().flatten())
                .find(|p| p["in"] == "path" && p["name"] == name.as_str())
                .and_then(|p| p["schema"]["enum"].as_array())
                .unwrap_or_else(|| panic!("{template}: {{{name}}} needs an enum to be checked"))
                .iter()
                .map(|v| v.as_str().expect("string").to_owned())
                .collect();
            let placeholder = format!("{{{name}}}");
            paths = paths
                .iter()
                .flat_map(|p| values.iter().map(|v| p.replacen(&placeholder, v, 1)))
                .collect();
        }
        result.extend(paths.into_iter().map(|p| (p, internal > 0)));
    }
    result
}

/// Whether a backend names a Service of these objects, in the Ingress's namespace, and a port
/// that Service defines.
fn backend_exists(objects: &[Value], namespace: &Value, backend: &Value) -> bool {
    let service = &backend["service"];
    find(objects, "Service").into_iter().any(|s| {
        s["metadata"]["name"] == service["name"]
            && &s["metadata"]["namespace"] == namespace
            && s["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| {
                    (service["port"].get("name").is_some() && p["name"] == service["port"]["name"])
                        || (service["port"].get("number").is_some()
                            && p["port"] == service["port"]["number"])
                })
    })
}

#[test]
fn every_webhook_route_is_reachable_through_every_ingress_and_nothing_internal() {
    let Some(kubectl) = tool("kubectl") else {
        return;
    };
    // As served: the senders' names filled in.
    let text = eso_refresher::http::openapi_document();
    let paths = described_paths(&serde_json::from_str(text).expect("JSON"));
    assert!(paths.iter().any(|(_, internal)| !internal), "{paths:?}");
    let mut checked = 0;
    for overlay in OVERLAYS {
        let objects = render(&kubectl, overlay);
        let services: Vec<&Value> = find(&objects, "Service");
        assert_eq!(services.len(), 1, "{overlay}: the service's Service");
        let ours = &services[0]["metadata"]["name"];
        for ingress in find(&objects, "Ingress") {
            let namespace = &ingress["metadata"]["namespace"];
            let rules = ingress["spec"]["rules"].as_array().expect("rules");
            let backends = rules
                .iter()
                .flat_map(|r| r["http"]["paths"].as_array().into_iter().flatten())
                .map(|p| &p["backend"])
                .chain(ingress["spec"].get("defaultBackend"));
            for backend in backends {
                assert!(
                    backend_exists(&objects, namespace, backend),
                    "{overlay}: {backend} names no Service port"
                );
            }
            let mut wrong = Vec::new();
            for rule in rules {
                for (path, internal) in &paths {
                    let reached = backend_for(ingress, rule, path)
                        .is_some_and(|b| &b["service"]["name"] == ours);
                    if reached == *internal {
                        let how = if reached {
                            "reachable"
                        } else {
                            "not reachable"
                        };
                        wrong.push(format!("{path} {how} at {}", rule["host"]));
                    }
                }
            }
            assert!(
                wrong.is_empty(),
                "{overlay}: x-internal routes must not be reachable, all others must:\n{}",
                wrong.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no overlay ships an Ingress");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_matching_follows_the_kubernetes_examples() {
        for (path_type, path, request, expected) in [
            ("Prefix", "/", "/aaa/bbb", true),
            ("Prefix", "/", "/", true),
            ("Exact", "/foo", "/foo", true),
            ("Exact", "/foo", "/bar", false),
            ("Exact", "/foo", "/foo/", false),
            ("Exact", "/foo/", "/foo", false),
            ("Exact", "/foo", "/FOO", false),
            ("Prefix", "/foo", "/foo", true),
            ("Prefix", "/foo", "/foo/", true),
            ("Prefix", "/foo/", "/foo", true),
            ("Prefix", "/foo/", "/foo/", true),
            ("Prefix", "/aaa/bb", "/aaa/bbb", false),
            ("Prefix", "/aaa/bbb", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb/", "/aaa/bbb", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbb/ccc", true),
            ("Prefix", "/aaa/bbb", "/aaa/bbbxyz", false),
            ("Prefix", "/aaa/bbb", "/aaa", false),
            ("Prefix", "/webhook", "/webhook/aws", true),
            ("Prefix", "/webhook", "/webhooks", false),
        ] {
            assert_eq!(
                path_matches(path_type, path, request),
                expected,
                "{path_type} {path} ~ {request}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "up to the ingress class")]
    fn implementation_specific_is_refused() {
        path_matches("ImplementationSpecific", "/webhook", "/webhook");
    }

    fn backend(name: &str) -> Value {
        json!({"service": {"name": name, "port": {"name": "http"}}})
    }

    #[test]
    fn the_longest_path_wins_and_exact_before_prefix() {
        let rule = json!({"http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": backend("root")},
            {"path": "/aaa", "pathType": "Prefix", "backend": backend("prefix")},
            {"path": "/aaa", "pathType": "Exact", "backend": backend("exact")},
        ]}});
        let ingress = json!({"spec": {}});
        let name =
            |request| backend_for(&ingress, &rule, request).map(|b| b["service"]["name"].clone());
        assert_eq!(name("/aaa"), Some(json!("exact")));
        assert_eq!(name("/aaa/ccc"), Some(json!("prefix")));
        assert_eq!(name("/bbb"), Some(json!("root")));

        let narrow = json!({"http": {"paths": [
            {"path": "/webhook", "pathType": "Exact", "backend": backend("svc")},
        ]}});
        assert_eq!(backend_for(&ingress, &narrow, "/webhook/aws"), None);
        let fallback = json!({"spec": {"defaultBackend": backend("default")}});
        assert_eq!(
            backend_for(&fallback, &narrow, "/webhook/aws"),
            Some(&backend("default"))
        );
    }

    #[test]
    fn templated_paths_expand_to_their_enum_and_internal_marks_are_read() {
        let openapi = json!({"paths": {
            "/hook/{p}": {"post": {"parameters": [
                {"name": "p", "in": "path", "schema": {"enum": ["a", "b"]}}
            ]}},
            "/healthz": {"get": {"x-internal": true}},
        }});
        let mut paths = described_paths(&openapi);
        paths.sort();
        assert_eq!(
            paths,
            [
                ("/healthz".to_owned(), true),
                ("/hook/a".to_owned(), false),
                ("/hook/b".to_owned(), false),
            ]
        );
    }
}
