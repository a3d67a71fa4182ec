//! SecretStores and ClusterSecretStores through the watch, and the changes that name a whole
//! scope (Doppler configs, Infisical folders), each on its own signed route.

use eso_refresher::config::{Config, Scheme, Secret};
use serde_json::{Value, json};

use crate::auth::{hex_hmac, unix_seconds};
use crate::support::*;

fn doppler(project: &str, config: &str) -> Value {
    let mut doppler =
        json!({"auth": {"secretRef": {"dopplerToken": {"name": "doppler", "key": "token"}}}});
    if !project.is_empty() {
        doppler["project"] = json!(project);
        doppler["config"] = json!(config);
    }
    json!({"doppler": doppler})
}

fn infisical(environment: &str, path: &str, recursive: bool) -> Value {
    json!({"infisical": {
        "auth": {"universalAuthCredentials": {
            "clientId": {"name": "infisical", "key": "id"},
            "clientSecret": {"name": "infisical", "key": "secret"}}},
        "secretsScope": {"projectSlug": "payments", "environmentSlug": environment,
            "secretsPath": path, "recursive": recursive}}})
}

fn reading(namespace: &str, name: &str, kind: &str, store: &str) -> Value {
    external_secret(namespace, name)
        .reading_from(kind, store)
        .with_key("DB_PASSWORD")
        .build()
}

/// Doppler configs prd and stg, Infisical folders, an Akeyless store, and their readers.
async fn scoped_cluster(config: Config) -> (FakeApiServer, TestApp) {
    let api = FakeApiServer::start().await;
    for store in [
        secret_store(Some("team-a"), "prd", doppler("payments", "prd")),
        secret_store(Some("team-a"), "stg", doppler("payments", "stg")),
        secret_store(None, "token-bound", doppler("", "")),
        secret_store(
            Some("team-b"),
            "payments",
            infisical("prod", "/payments", false),
        ),
        secret_store(Some("team-b"), "everything", infisical("prod", "/", true)),
        secret_store(Some("team-b"), "dev", infisical("dev", "/payments", false)),
        secret_store(Some("team-d"), "root", infisical("prod", "/", false)),
        secret_store(
            None,
            "akeyless",
            json!({"akeyless": {"akeylessGWApiURL": "https://api.akeyless.io",
            "authSecretRef": {"secretRef": {"accessID": {"name": "a", "key": "id"}}}}}),
        ),
    ] {
        api.apply(store);
    }
    for object in [
        reading("team-a", "prd", "SecretStore", "prd"),
        reading("team-a", "stg", "SecretStore", "stg"),
        reading("team-c", "token-bound", "ClusterSecretStore", "token-bound"),
        reading("team-b", "payments", "SecretStore", "payments"),
        reading("team-b", "everything", "SecretStore", "everything"),
        reading("team-b", "dev", "SecretStore", "dev"),
        reading("team-b", "akeyless", "ClusterSecretStore", "akeyless"),
        external_secret("team-d", "own-folder")
            .reading_from("SecretStore", "root")
            .with_key("/app/DB_PASSWORD")
            .build(),
        // Its store does not exist (or cannot be read): any change may concern it.
        reading("team-e", "unknown-store", "SecretStore", "missing"),
    ] {
        api.apply(object);
    }
    let app = spawn_ready(&api, config).await;
    (api, app)
}

fn signed_routes() -> Config {
    let mut config = config();
    let routes = &mut config.auth.routes;
    routes.insert("doppler".into(), vec![Scheme::HmacDoppler]);
    routes.insert("infisical".into(), vec![Scheme::HmacInfisical]);
    config.auth.doppler_secrets = vec![Secret::new("dp-secret")];
    config.auth.infisical_secrets = vec![Secret::new("inf-secret")];
    config
}

async fn post_doppler(app: &TestApp, project: &str, config: &str, secret: &str) -> (u16, Value) {
    let body = json!({"type": "config.secrets.update",
        "config": {"name": config, "environment": config, "project": project},
        "project": {"id": project, "name": project}})
    .to_string();
    let signature = format!("sha256={}", hex_hmac(secret, body.as_bytes()));
    let request = app.http.post(format!("{}/webhook/doppler", app.url));
    send(request.header("X-Doppler-Signature", signature).body(body)).await
}

async fn post_infisical(app: &TestApp, environment: &str, path: &str) -> (u16, Value) {
    let millis = unix_seconds() * 1000;
    let body = json!({"event": "secrets.modified",
        "project": {"workspaceId": "6520c7a1b2c3d4e5f6a7b8c9", "environment": environment, "secretPath": path},
        "timestamp": millis})
    .to_string();
    let signature = hex_hmac("inf-secret", body.as_bytes());
    let request = app.http.post(format!("{}/webhook/infisical", app.url));
    let header = format!("t={millis};{signature}");
    send(request.header("x-infisical-signature", header).body(body)).await
}

#[tokio::test]
async fn a_doppler_config_change_refreshes_the_readers_of_that_config_only() {
    let (api, app) = scoped_cluster(signed_routes()).await;
    let (status, report) = post_doppler(&app, "payments", "prd", "dp-secret").await;
    assert_eq!(status, 200, "{report}");
    // A store without project and config reads whatever its token is bound to: it counts, as
    // does a store that is not known.
    assert_eq!(
        refreshed(&report),
        ["team-a/prd", "team-c/token-bound", "team-e/unknown-store"]
    );
    let (_, report) = post_doppler(&app, "payments", "dev", "dp-secret").await;
    assert_eq!(
        refreshed(&report),
        ["team-c/token-bound", "team-e/unknown-store"]
    );
    assert_eq!(report["unmatched"], json!([]));

    let before = api.patches().len();
    let (status, _) = post_doppler(&app, "payments", "prd", "not-the-secret").await;
    assert_eq!(status, 401);
    assert_eq!(
        api.patches().len(),
        before,
        "a forged signature patches nothing"
    );
}

#[tokio::test]
async fn an_infisical_folder_change_refreshes_the_readers_of_that_folder() {
    let (api, app) = scoped_cluster(signed_routes()).await;
    let (status, report) = post_infisical(&app, "prod", "/payments").await;
    assert_eq!(status, 200, "{report}");
    let unknown = "team-e/unknown-store";
    assert_eq!(
        refreshed(&report),
        ["team-b/everything", "team-b/payments", unknown]
    );
    let (_, report) = post_infisical(&app, "prod", "/payments/cards").await;
    assert_eq!(
        refreshed(&report),
        ["team-b/everything", unknown],
        "recursive only"
    );
    // A key with slashes names its own folder, whatever the store's path.
    let (_, report) = post_infisical(&app, "prod", "/app").await;
    assert_eq!(
        refreshed(&report),
        ["team-b/everything", "team-d/own-folder", unknown]
    );
    let (_, report) = post_infisical(&app, "staging", "/payments").await;
    assert_eq!(refreshed(&report), [unknown]);
    let patched: Vec<String> = api.patches().iter().map(|p| p.path.clone()).collect();
    assert!(
        patched.iter().all(|p| !p.contains("/namespaces/team-a/")),
        "{patched:#?}"
    );
}

#[tokio::test]
async fn an_akeyless_event_refreshes_only_readers_of_akeyless_stores() {
    let (_api, app) = scoped_cluster(config()).await;
    let (status, report) = app.webhook(&akeyless_events(&["/DB_PASSWORD"])).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        refreshed(&report),
        ["team-b/akeyless", "team-e/unknown-store"]
    );
    let (_, report) = app.webhook(&json!({"keys": ["DB_PASSWORD"]})).await;
    assert_eq!(
        refreshed(&report).len(),
        8,
        "a generic body names no provider: {report}"
    );
}

#[tokio::test]
async fn stores_are_followed_through_the_watch() {
    let api = FakeApiServer::start().await;
    let aws = |prefix: &str| json!({"aws": {"service": "SecretsManager", "region": "eu-west-1", "prefix": prefix}});
    api.apply(
        external_secret("team-a", "db")
            .reading_from("SecretStore", "aws")
            .with_key("db-password")
            .build(),
    );
    let app = spawn_ready(&api, config()).await;
    // Each event with an id of its own, so none is a duplicate of an earlier one.
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let aws_event = |name: &str| {
        let n = sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail",
            "region": "eu-west-1", "id": format!("event-{n}"),
            "detail": {"eventName": "PutSecretValue", "requestParameters": {"secretId": name}}})
    };
    let post = |name: &str| {
        let body = aws_event(name).to_string();
        let app = &app;
        async move {
            let request = app.http.post(format!("{}/webhook/aws", app.url));
            let (_, report) = send(request.basic_auth(USER, Some(PASSWORD)).body(body)).await;
            refreshed(&report)
        }
    };
    assert_eq!(
        post("prod/db-password").await,
        Vec::<String>::new(),
        "the store is not there yet"
    );
    api.apply(secret_store(Some("team-a"), "aws", aws("prod/")));
    wait_for("the store's prefix to apply", || async {
        post("prod/db-password").await == ["team-a/db"]
    })
    .await;
    api.apply(secret_store(Some("team-a"), "aws", aws("stage/")));
    wait_for("the changed prefix to apply", || async {
        post("stage/db-password").await == ["team-a/db"]
    })
    .await;
    assert_eq!(post("prod/db-password").await, Vec::<String>::new());
    api.delete("SecretStore", Some("team-a"), "aws");
    wait_for("the key as written to count again", || async {
        post("db-password").await == ["team-a/db"]
    })
    .await;
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["secretStores"], 0, "{ready}");
}

#[tokio::test]
async fn vault_keys_are_read_the_way_eso_builds_their_paths() {
    let api = FakeApiServer::start().await;
    let vault = |mount: &str, version: &str| json!({"vault": {"server": "https://vault:8200", "path": mount, "version": version}});
    api.apply(secret_store(Some("team-a"), "kv2", vault("secret", "v2")));
    api.apply(secret_store(Some("team-a"), "kv1", vault("legacy", "v1")));
    for (name, store, key) in [
        ("app", "kv2", "app"),
        // ESO reads `secret/data/data/app`: the secret named `data/app`.
        ("data-app", "kv2", "data/app"),
        ("legacy", "kv1", "data/x"),
    ] {
        api.apply(
            external_secret("team-a", name)
                .reading_from("SecretStore", store)
                .with_key(key)
                .build(),
        );
    }
    let app = spawn_ready(&api, config()).await;
    let write = |event_type: &str, mount: &str, path: &str| {
        json!({"data": {"event_type": event_type,
            "event": {"id": format!("{event_type}/{path}"), "metadata": {"data_path": path}},
            "plugin_info": {"mount_path": format!("{mount}/")}}})
        .to_string()
    };
    let post = |body: String| {
        let request = app.http.post(format!("{}/webhook/vault", app.url));
        send(request.basic_auth(USER, Some(PASSWORD)).body(body))
    };
    let (_, report) = post(write("kv-v2/data-write", "secret", "secret/data/app")).await;
    assert_eq!(refreshed(&report), ["team-a/app"]);
    let (_, report) = post(write("kv-v2/data-write", "secret", "secret/data/data/app")).await;
    assert_eq!(refreshed(&report), ["team-a/data-app"]);
    let (_, report) = post(write("kv-v1/write", "legacy", "legacy/data/x")).await;
    assert_eq!(
        refreshed(&report),
        ["team-a/legacy"],
        "KV v1 has no data/ segment"
    );
}
