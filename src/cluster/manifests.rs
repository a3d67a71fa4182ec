//! ExternalSecrets read from manifest files, to try the service without a cluster, and what
//! fills an index from objects read at once (files, or one list of a cluster).

use std::io::Read;
use std::path::Path;

use kube::api::DynamicObject;
use serde_json::Value;

use crate::Error;
use crate::core::external_secret::IndexedSecret;
use crate::core::index::RefreshIndex;
use crate::core::store::{Backend, StoreId, StoreReader};

/// ExternalSecrets and the stores they may read from, read at once.
#[derive(Debug, Default)]
pub struct Objects {
    pub external_secrets: Vec<DynamicObject>,
    /// SecretStores and ClusterSecretStores.
    pub stores: Vec<DynamicObject>,
}

impl Objects {
    /// Keeps the ExternalSecrets and stores among `objects`, by their kind.
    fn sort(&mut self, objects: Vec<DynamicObject>) {
        for object in objects {
            if kind_is(&object, "ExternalSecret") {
                self.external_secrets.push(object);
            } else if is_store(&object) {
                self.stores.push(object);
            }
        }
    }

    /// Fills `index` with them, as the watch does after a first list: the stores first, read
    /// by `stores`, then every ExternalSecret (what cannot be understood in one is logged).
    pub fn fill(&self, index: &mut RefreshIndex, stores: StoreReader) {
        for store in &self.stores {
            if let Some(id) = StoreId::of(store) {
                index.apply_store(id, Backend::from_object(store, stores));
            }
        }
        let secrets = self.external_secrets.iter();
        index.reset(None, secrets.filter_map(IndexedSecret::read_logged));
    }
}

/// Every ExternalSecret, SecretStore and ClusterSecretStore at `path`: a file (`-` for
/// standard input), or the `.yaml`, `.yml` and `.json` files of a directory (not recursive).
/// A file may hold several YAML documents or JSON values, and lists (`kind: List`, as
/// `kubectl get -o yaml` prints, or `ExternalSecretList`, as the API answers) are read item by
/// item. Objects of other kinds are left out.
pub fn load(path: &Path) -> Result<Objects, Error> {
    let failed = |path: &Path, e: &dyn std::fmt::Display| {
        Error::Manifests(format!("{}: {e}", path.display()))
    };
    let mut objects = Objects::default();
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| failed(path, &e))?;
        objects.sort(parse_documents(&text).map_err(|e| failed(path, &e))?);
        return Ok(objects);
    }
    let metadata = std::fs::metadata(path).map_err(|e| failed(path, &e))?;
    let files = if metadata.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| failed(path, &e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| {
                path.is_file()
                    && path
                        .extension()
                        .and_then(|ext| ext.to_str())
                        .is_some_and(|ext| matches!(ext, "yaml" | "yml" | "json"))
            })
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|e| failed(&file, &e))?;
        objects.sort(parse_documents(&text).map_err(|e| failed(&file, &e))?);
    }
    Ok(objects)
}

pub fn kind_is(object: &DynamicObject, kind: &str) -> bool {
    object.types.as_ref().is_some_and(|t| t.kind == kind)
}

pub fn is_store(object: &DynamicObject) -> bool {
    kind_is(object, "SecretStore") || kind_is(object, "ClusterSecretStore")
}

/// Parses a text of JSON values, or of YAML documents, into objects; the items of a list are
/// objects of their own. Lines that are documentation template markers (`{% raw %}`), found
/// in manifests copied from docs sites, are ignored in YAML.
pub fn parse_documents(text: &str) -> Result<Vec<DynamicObject>, String> {
    let mut objects = Vec::new();
    for (i, document) in documents(text)?.into_iter().enumerate() {
        unlist(document, &mut objects).map_err(|e| format!("document {}: {e}", i + 1))?;
    }
    Ok(objects)
}

/// The JSON values or YAML documents of a text, without empty ones. JSON is read as JSON
/// first: YAML refuses the tabs a JSON text may be indented with.
fn documents(text: &str) -> Result<Vec<Value>, String> {
    if text.trim_start().starts_with(['{', '[']) {
        let values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        if let Ok(values) = values.collect::<Result<Vec<_>, _>>() {
            return Ok(values);
        }
    }
    let cleaned: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("{%"))
        .map(|line| format!("{line}\n"))
        .collect();
    // The parser's default budget guards against hostile input (1,024 documents, 250,000
    // nodes); these are the operator's own files, which may hold every ExternalSecret of a
    // large cluster.
    let options = serde_saphyr::options! { budget: None };
    let documents: Vec<Value> =
        serde_saphyr::from_multiple_with_options(&cleaned, options).map_err(|e| e.to_string())?;
    Ok(documents.into_iter().filter(|d| !d.is_null()).collect())
}

/// Adds `document` to `objects`, or the items of a list (`kind: List` or `<Kind>List`, or a
/// bare JSON array). An item without `apiVersion`/`kind` takes them from its typed list.
fn unlist(document: Value, objects: &mut Vec<DynamicObject>) -> Result<(), String> {
    let kind = document["kind"].as_str().unwrap_or_default().to_owned();
    let items = match document {
        Value::Array(items) => items,
        Value::Object(mut list) if kind.ends_with("List") && list.get("items").is_some() => {
            let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty());
            let api_version = list.get("apiVersion").cloned();
            let Some(Value::Array(mut items)) = list.remove("items") else {
                return Err(format!("{kind}: items is not a list"));
            };
            if let (Some(item_kind), Some(api_version)) = (item_kind, api_version) {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.entry("kind").or_insert_with(|| item_kind.into());
                    item.entry("apiVersion")
                        .or_insert_with(|| api_version.clone());
                }
            }
            items
        }
        object => {
            objects.push(serde_json::from_value(object).map_err(|e| e.to_string())?);
            return Ok(());
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        unlist(item, objects).map_err(|e| format!("item {}: {e}", i + 1))?;
    }
    Ok(())
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
        let objects = load(&dir).unwrap();
        assert!(objects.external_secrets.len() >= 3);
        assert_eq!(objects.stores.len(), 2);
        assert!(
            objects
                .external_secrets
                .iter()
                .all(|o| kind_is(o, "ExternalSecret"))
        );
        assert!(objects.stores.iter().all(is_store));
        let one_file = load(&dir.join("stores.yaml")).unwrap();
        assert_eq!(one_file.stores.len(), 2, "a file, not only a directory");
        assert_eq!(one_file.external_secrets.len(), 1);
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let err = load(Path::new("/no/such/dir")).unwrap_err();
        assert!(err.to_string().contains("/no/such/dir"));
    }

    const ES: &str = r#"{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "a", "namespace": "n"}}"#;

    fn names(objects: &[DynamicObject]) -> Vec<String> {
        let name = |o: &DynamicObject| {
            let kind = o.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?");
            format!("{kind} {}", o.metadata.name.as_deref().unwrap_or("?"))
        };
        objects.iter().map(name).collect()
    }

    #[test]
    fn reads_lists_as_kubectl_and_the_api_give_them() {
        // kubectl get externalsecrets -A -o yaml
        let kubectl = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: external-secrets.io/v1\n  kind: ExternalSecret\n  metadata: {name: a, namespace: ns}\n- apiVersion: external-secrets.io/v1\n  kind: SecretStore\n  metadata: {name: s, namespace: ns}\nmetadata: {resourceVersion: \"\"}\n";
        assert_eq!(
            names(&parse_documents(kubectl).unwrap()),
            ["ExternalSecret a", "SecretStore s"]
        );
        // The API's own list, whose items may leave their type to the list's.
        let api = r#"{"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecretList",
            "metadata": {}, "items": [{"metadata": {"name": "b", "namespace": "n"}}]}"#;
        let objects = parse_documents(api).unwrap();
        assert_eq!(names(&objects), ["ExternalSecret b"]);
        assert_eq!(
            objects[0].types.as_ref().unwrap().api_version,
            "external-secrets.io/v1"
        );
        // Lists within lists, and a bare array.
        let nested = format!(r#"[{ES}, {{"apiVersion": "v1", "kind": "List", "items": [{ES}]}}]"#);
        assert_eq!(parse_documents(&nested).unwrap().len(), 2);
        let bad = r#"{"apiVersion": "v1", "kind": "List", "items": {"not": "a list"}}"#;
        assert!(
            parse_documents(bad)
                .unwrap_err()
                .contains("items is not a list")
        );
    }

    #[test]
    fn reads_json_indented_with_tabs_and_concatenated() {
        let tabbed = ES.replace("\n        ", "\n\t");
        assert!(tabbed.contains('\t'));
        assert_eq!(parse_documents(&tabbed).unwrap().len(), 1);
        let two = format!("{ES}\n{ES}");
        assert_eq!(parse_documents(&two).unwrap().len(), 2);
    }

    #[test]
    fn fills_an_index_with_stores_and_external_secrets() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/manifests");
        let objects = load(&dir).unwrap();
        let mut index = RefreshIndex::default();
        objects.fill(&mut index, |_, _| None);
        assert_eq!(index.len(), objects.external_secrets.len());
        assert_eq!(index.store_count(), 2);
    }
}
