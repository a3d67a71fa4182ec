//! ExternalSecrets read from manifest files, to try the service without a cluster.

use std::path::Path;

use kube::api::DynamicObject;

use crate::Error;

/// Every ExternalSecret, SecretStore and ClusterSecretStore in the `.yaml`, `.yml` and `.json`
/// files of `dir` (not recursive).
pub fn load_dir(dir: &Path) -> Result<Vec<DynamicObject>, Error> {
    let failed = |e: String| Error::Manifests(format!("{}: {e}", dir.display()));
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| failed(e.to_string()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.is_file()
                && path
                    .extension()
                    .and_then(|ext| ext.to_str())
                    .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"))
        })
        .collect();
    paths.sort();
    let mut objects = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::Manifests(format!("{}: {e}", path.display())))?;
        let documents = parse_documents(&text)
            .map_err(|e| Error::Manifests(format!("{}: {e}", path.display())))?;
        objects.extend(
            documents
                .into_iter()
                .filter(|o| kind_is(o, "ExternalSecret") || is_store(o)),
        );
    }
    Ok(objects)
}

pub fn kind_is(object: &DynamicObject, kind: &str) -> bool {
    object.types.as_ref().is_some_and(|t| t.kind == kind)
}

pub fn is_store(object: &DynamicObject) -> bool {
    kind_is(object, "SecretStore") || kind_is(object, "ClusterSecretStore")
}

/// Parses a multi-document YAML (or JSON) text into objects. Lines that are documentation
/// template markers (`{% raw %}`), found in manifests copied from docs sites, are ignored.
pub fn parse_documents(text: &str) -> Result<Vec<DynamicObject>, String> {
    let cleaned: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("{%"))
        .map(|line| format!("{line}\n"))
        .collect();
    // The parser's default budget guards against hostile input (1,024 documents, 250,000
    // nodes); these are the operator's own files, which may hold every ExternalSecret of a
    // large cluster.
    let options = serde_saphyr::options! { budget: None };
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(&cleaned, options).map_err(|e| e.to_string())?;
    documents
        .into_iter()
        .filter(|document| !document.is_null())
        .enumerate()
        .map(|(i, document)| {
            serde_json::from_value(document).map_err(|e| format!("document {}: {e}", i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::external_secret::IndexedSecret;
    use crate::core::store::StoreId;

    #[test]
    fn eso_example_manifests_are_indexed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/eso/examples");
        let read = |file: &str| {
            let text = std::fs::read_to_string(format!("{dir}/{file}")).expect(file);
            let objects = parse_documents(&text).expect(file);
            IndexedSecret::from_object(&objects[0]).expect("named")
        };
        assert_eq!(
            read("akeyless-external-secret.yaml").key_names(),
            ["db-username", "db-password"]
        );
        assert_eq!(
            read("akeyless-external-secret-json.yaml").key_names(),
            ["database-credentials"]
        );
        let finder = read("getallsecrets-find-by-name.yaml");
        assert!(finder.matches_find("team/api-key"));
        assert!(!finder.matches_find("team/password"));
    }

    #[test]
    fn every_field_of_the_v1_schema_is_understood() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/eso/skeletons/externalsecret-v1.yaml"
        );
        let text = std::fs::read_to_string(path).expect("skeleton");
        let mut objects = parse_documents(&text).expect("parses");
        objects[0].metadata.name = Some("skeleton".into());
        let secret = IndexedSecret::from_object(&objects[0]).expect("named");
        assert!(secret.problems.is_empty(), "{:?}", secret.problems);
        assert_eq!(secret.key_names(), ["string"]);
        assert_eq!(
            secret.keys[0].store,
            Some(StoreId::namespaced("default", "string"))
        );
        // Its dataFrom entry names a generator, which ESO reads instead of the store.
        assert!(secret.finds.is_empty());
        assert!(
            secret.skip_reason.is_some(),
            "the skeleton says CreatedOnce"
        );
    }

    #[test]
    fn reads_multi_document_yaml_with_doc_markers() {
        let text = "{% raw %}\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n{% endraw %}\n";
        let objects = parse_documents(text).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].metadata.name.as_deref(), Some("a"));
    }

    #[test]
    fn reads_more_documents_than_the_default_budget() {
        let doc =
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata:\n  name: a\n";
        let text = vec![doc; 3000].join("---\n");
        assert_eq!(parse_documents(&text).unwrap().len(), 3000);
    }

    #[test]
    fn bad_yaml_is_an_error() {
        assert!(parse_documents("kind: [unclosed").is_err());
        assert!(
            parse_documents("- just\n- a list\n")
                .unwrap_err()
                .contains("document 1")
        );
    }

    #[test]
    fn loads_only_external_secrets_and_stores_from_the_examples() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
        let objects = load_dir(&dir).unwrap();
        let count = |kind: &str| objects.iter().filter(|o| kind_is(o, kind)).count();
        assert!(count("ExternalSecret") >= 3, "{}", objects.len());
        assert_eq!(count("SecretStore") + count("ClusterSecretStore"), 2);
        assert!(
            objects
                .iter()
                .all(|o| kind_is(o, "ExternalSecret") || is_store(o))
        );
    }

    #[test]
    fn missing_dir_is_an_error_naming_it() {
        let err = load_dir(Path::new("/no/such/dir")).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir"));
    }
}
