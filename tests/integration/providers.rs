//! Other secret managers' notifications, at /webhook/{provider} and recognized at /webhook.

use serde_json::{Value, json};

use crate::support::*;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn post(app: &TestApp, path: &str, body: String) -> (u16, Value) {
    let request = app.http.post(format!("{}{path}", app.url));
    send(request.basic_auth(USER, Some(PASSWORD)).body(body)).await
}

/// Stores of several providers, each in a namespace of its own, and ExternalSecrets naming
/// the same secrets through them, besides decoys: the same names in another region, vault or
/// mount, or through another provider.
async fn cluster() -> (FakeApiServer, TestApp) {
    cluster_with(config()).await
}

/// The cluster, with a local SNS stand-in trusted for certificates and SubscribeURLs: the SNS
/// fixtures are posted signed with the test key, as SNS would sign them.
async fn cluster_with_sns() -> (FakeApiServer, TestApp, FakeSns) {
    let sns = FakeSns::start().await;
    let mut config = config();
    config.sns = sns.settings();
    let (api, app) = cluster_with(config).await;
    (api, app, sns)
}

/// A fixture's body; the SNS ones signed by `sns`.
fn body(file: &str, sns: &FakeSns) -> String {
    if file.starts_with("aws-sns-") {
        sns.signed(event_fixture(file)).to_string()
    } else {
        fixture(file)
    }
}

async fn cluster_with(config: eso_refresher::config::Config) -> (FakeApiServer, TestApp) {
    let api = FakeApiServer::start().await;
    let aws = |region: &str, prefix: Option<&str>| {
        let mut aws = json!({"service": "SecretsManager", "region": region});
        if let Some(prefix) = prefix {
            aws["prefix"] = json!(prefix);
        }
        json!({"aws": aws})
    };
    let vault = |mount: &str| json!({"vault": {"server": "https://vault:8200", "path": mount, "version": "v2"}});
    let azure =
        |name: &str| json!({"azurekv": {"vaultUrl": format!("https://{name}.vault.azure.net")}});
    let stores = [
        secret_store(Some("aws"), "ireland", aws("eu-west-1", None)),
        secret_store(
            Some("aws"),
            "payments",
            aws("eu-west-1", Some("prod/payments/")),
        ),
        secret_store(Some("aws-us"), "virginia", aws("us-east-1", None)),
        secret_store(
            Some("gcp"),
            "gcp",
            json!({"gcpsm": {"projectID": "shop-prod"}}),
        ),
        secret_store(Some("azure"), "prod", azure("prod-vault")),
        secret_store(Some("azure"), "dev", azure("dev-vault")),
        secret_store(Some("vault"), "secret", vault("secret")),
        secret_store(Some("vault"), "kv", vault("kv")),
        secret_store(
            None,
            "akeyless",
            json!({"akeyless": {"akeylessGWApiURL": "https://api.akeyless.io",
            "authSecretRef": {"secretRef": {"accessID": {"name": "a", "key": "id"}}}}}),
        ),
    ];
    for store in stores {
        api.apply(store);
    }
    let reading = |namespace: &str, name: &str, store: &str, key: &str| {
        external_secret(namespace, name)
            .reading_from("SecretStore", store)
            .with_key(key)
            .build()
    };
    let db = "prod/payments/db-password";
    for object in [
        reading("aws", "by-name", "ireland", db),
        reading(
            "aws",
            "by-arn",
            "ireland",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/payments/db-password-Ab12Cd",
        ),
        reading("aws", "by-prefix", "payments", "db-password"),
        reading("aws", "api", "ireland", "prod/payments/api-key"),
        reading("aws-us", "same-name", "virginia", db),
        reading("gcp", "db", "gcp", "db-password"),
        reading("azure", "db", "prod", "secret/db-password"),
        reading("azure", "dev-db", "dev", "db-password"),
        reading("vault", "db", "secret", "prod/payments/db-password"),
        reading("vault", "other-mount", "kv", "prod/payments/db-password"),
        external_secret("other", "akeyless").with_key(db).build(),
        external_secret("other", "unrelated")
            .with_key("/nothing/here")
            .build(),
    ] {
        api.apply(object);
    }
    let app = spawn_ready(&api, config).await;
    (api, app)
}

#[tokio::test]
async fn each_provider_refreshes_the_external_secrets_naming_its_secret() {
    let (api, app, sns) = cluster_with_sns().await;
    // Only ExternalSecrets reading from a store of the event's provider, region, vault or
    // mount are refreshed. The SNS notification wraps the EventBridge event before it: same
    // id, a duplicate. CloudEvents name no provider: every store's reader of the key counts.
    let cases = [
        (
            "/webhook/aws",
            "aws-eventbridge-cloudtrail.json",
            &["aws/by-arn", "aws/by-name", "aws/by-prefix"][..],
        ),
        ("/webhook/aws", "aws-sns-notification.json", &[][..]),
        (
            "/webhook/aws",
            "aws-secret-label-updated.json",
            &["aws/api"][..],
        ),
        ("/webhook/gcp", "gcp-pubsub-push.json", &["gcp/db"][..]),
        ("/webhook/azure", "azure-eventgrid.json", &["azure/db"][..]),
        ("/webhook/azure", "azure-cloudevent.json", &["azure/db"][..]),
        (
            "/webhook/vault",
            "vault-kv-v2-event.json",
            &["vault/db"][..],
        ),
        (
            "/webhook/cloudevents",
            "cloudevent-structured.json",
            &[
                "aws/by-arn",
                "aws/by-name",
                "aws/by-prefix",
                "aws-us/same-name",
                "other/akeyless",
                "vault/db",
                "vault/other-mount",
            ][..],
        ),
    ];
    for (path, file, expected) in cases {
        let (status, report) = post(&app, path, body(file, &sns)).await;
        assert_eq!(status, 200, "{path} {file}: {report}");
        assert_eq!(refreshed(&report), expected, "{file}: {report}");
        if expected.is_empty() {
            assert_eq!(
                report["duplicates"].as_array().map(Vec::len),
                Some(1),
                "{report}"
            );
        }
        // Recognized at /webhook too; its id is remembered now, so it is a duplicate there.
        let (status, again) = post(&app, "/webhook", body(file, &sns)).await;
        assert_eq!(status, 200, "{file} at /webhook: {again}");
        assert_eq!(refreshed(&again), Vec::<String>::new(), "{file}: {again}");
        assert_eq!(again["events"], report["events"], "{file}");
    }
    let unrelated = api
        .patches()
        .iter()
        .filter(|p| p.path.contains("/unrelated"))
        .count();
    assert_eq!(unrelated, 0);
}

#[tokio::test]
async fn aws_arns_and_names_reach_the_same_external_secrets() {
    let (_api, app) = cluster().await;
    let (status, report) = post(
        &app,
        "/webhook/aws",
        fixture("aws-eventbridge-cloudtrail.json"),
    )
    .await;
    assert_eq!(status, 200);
    let names = refreshed(&report);
    assert!(
        names.contains(&"aws/by-name".to_owned()) && names.contains(&"aws/by-arn".to_owned()),
        "{report}"
    );
}

#[tokio::test]
async fn handshakes_are_answered() {
    let (api, app, sns) = cluster_with_sns().await;
    let (status, reply) = post(
        &app,
        "/webhook/azure",
        fixture("azure-eventgrid-validation.json"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        reply,
        json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"})
    );

    let options = app
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/webhook/azure", app.url),
        )
        .header("WebHook-Request-Origin", "eventgrid.azure.net")
        .send()
        .await
        .unwrap();
    assert_eq!(options.status(), 200);
    assert_eq!(
        options.headers()["webhook-allowed-origin"],
        "eventgrid.azure.net"
    );

    let (status, reply) = post(
        &app,
        "/webhook/aws",
        body("aws-sns-subscription-confirmation.json", &sns),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reply["subscriptionConfirmation"], "confirmed", "{reply}");
    assert_eq!(sns.confirmations().len(), 1);
    assert!(api.patches().is_empty(), "handshakes refresh nothing");
}

#[tokio::test]
async fn events_without_a_new_value_are_acknowledged_not_refreshed() {
    let (api, app) = cluster().await;
    let bodies = [
        (
            "/webhook/gcp",
            json!({"message": {"attributes": {"eventType": "SECRET_VERSION_DESTROY", "secretId": "projects/1/secrets/db-password"}, "messageId": "m-1"}}),
        ),
        (
            "/webhook/azure",
            json!([{"id": "a-1", "eventType": "Microsoft.KeyVault.SecretNearExpiry", "data": {"ObjectName": "db-password"}}]),
        ),
        (
            "/webhook/vault",
            json!({"data": {"event_type": "kv-v2/delete", "event": {"id": "v-1", "metadata": {"path": "secret/data/prod/payments/db-password"}}}}),
        ),
        (
            "/webhook/cloudevents",
            json!({"specversion": "1.0", "id": "c-1", "type": "secret.deleted", "source": "s", "subject": "db-password"}),
        ),
    ];
    for (path, body) in bodies {
        let (status, report) = post(&app, path, body.to_string()).await;
        assert_eq!(status, 200, "{path}: {report}");
        assert_eq!(
            report["ignored"].as_array().map(Vec::len),
            Some(1),
            "{path}: {report}"
        );
        assert_eq!(report["refreshed"], json!([]));
    }
    assert!(api.patches().is_empty());
}

#[tokio::test]
async fn cloudevents_in_binary_mode_and_generic_keys() {
    let (api, app) = cluster().await;
    let binary = app
        .http
        .post(format!("{}/webhook/cloudevents", app.url))
        .basic_auth(USER, Some(PASSWORD))
        .header("ce-specversion", "1.0")
        .header("ce-type", "secret.updated")
        .header("ce-source", "ci")
        .header("ce-id", "b-1")
        .header("ce-subject", "db-password")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(binary.status(), 200);
    let (status, report) = post(
        &app,
        "/webhook/generic",
        json!({"keys": ["/nothing/here"]}).to_string(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(refreshed(&report), ["other/unrelated"]);
    assert!(
        api.patches()
            .iter()
            .any(|p| p.path.ends_with("/gcp/externalsecrets/db"))
    );
}

#[tokio::test]
async fn unknown_providers_and_bad_bodies() {
    let (_api, app) = cluster().await;
    let (status, _) = post(&app, "/webhook/onepassword", "{}".into()).await;
    assert_eq!(status, 404);
    for (path, body) in [
        ("/webhook/aws", r#"{"source": "aws.ec2"}"#),
        ("/webhook/gcp", r#"{"message": {}}"#),
        (
            "/webhook/cloudevents",
            r#"{"specversion": "1.0", "type": "t"}"#,
        ),
        ("/webhook/generic", r#"{"keys": [3]}"#),
    ] {
        let (status, answer) = post(&app, path, body.into()).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"], "bad_request");
    }
    // Credentials are required on every provider route.
    let anonymous = app
        .http
        .post(format!("{}/webhook/gcp", app.url))
        .body(fixture("gcp-pubsub-push.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}
