//! The OpenAPI description (issue 15) cannot drift from the router: every route the public
//! listener serves (`templates::ALL`) is documented in `openapi/bankgate.json`, every documented
//! operation is served (or marked `x-bankgate-planned`, documented ahead of its route, and left
//! out of `/openapi.json` until the router serves it), the problem types are README's, and
//! `GET /openapi.json` serves exactly the routed operations. That the gateway answers as the
//! document says is schemathesis's part, in `.ci/run`.

use std::collections::BTreeSet;

use bankgate::http::routes::meta::{OPENAPI, PLANNED};
use bankgate::http::templates::ALL;
use serde_json::Value;

use super::support::{StoreKind, TestGateway};

const METHODS: &[&str] = &["get", "put", "post", "delete", "patch", "head", "options"];

fn document() -> Value {
    serde_json::from_str(OPENAPI).expect("openapi/bankgate.json is JSON")
}

/// `(path, method)` of every operation of `document`, method in upper case; with whether it is
/// marked planned.
fn operations(document: &Value) -> Vec<(String, String, bool)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            assert!(
                METHODS.contains(&method.as_str()),
                "{path}: {method:?} is not an operation"
            );
            operations.push((
                path.clone(),
                method.to_uppercase(),
                operation.get(PLANNED).is_some(),
            ));
        }
    }
    operations
}

fn routed() -> BTreeSet<(String, String)> {
    ALL.iter()
        .flat_map(|route| {
            route
                .methods
                .iter()
                .map(|method| (route.path.to_owned(), (*method).to_owned()))
        })
        .collect()
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let document = document();
    assert_eq!(document["openapi"], "3.1.0");
    let documented = operations(&document);
    let documented_set: BTreeSet<(String, String)> = documented
        .iter()
        .map(|(path, method, _)| (path.clone(), method.clone()))
        .collect();
    let undocumented: Vec<String> = routed()
        .difference(&documented_set)
        .map(|(path, method)| {
            format!(
                "document {method} {path} in openapi/bankgate.json \
                 (paths[\"{path}\"].{}): the router serves it",
                method.to_lowercase()
            )
        })
        .collect();
    assert!(undocumented.is_empty(), "{}", undocumented.join("\n"));
    let unrouted: Vec<String> = documented
        .iter()
        .filter(|(path, method, planned)| {
            !planned && !routed().contains(&(path.clone(), method.clone()))
        })
        .map(|(path, method, _)| {
            format!(
                "openapi/bankgate.json documents {method} {path}, which the router does not \
                 serve (templates::ALL): remove it, or mark it \"{PLANNED}\" until its route lands"
            )
        })
        .collect();
    assert!(unrouted.is_empty(), "{}", unrouted.join("\n"));
    // Each path parameter of a template is declared, in the path.
    for (path, method, _) in &documented {
        let operation = &document["paths"][path][method.to_lowercase()];
        for name in path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
        {
            let declared = operation["parameters"]
                .as_array()
                .is_some_and(|parameters| {
                    parameters
                        .iter()
                        .any(|parameter| parameter["name"] == name && parameter["in"] == "path")
                });
            assert!(
                declared,
                "{method} {path}: declare the path parameter {name:?}"
            );
        }
        assert!(
            operation["responses"]
                .as_object()
                .is_some_and(|responses| !responses.is_empty()),
            "{method} {path}: no responses"
        );
    }
}

#[test]
fn the_problem_types_are_readmes() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let table = readme
        .split("### Problem types")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a Problem types section");
    let in_readme: BTreeSet<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(|slug| format!("https://bankgate.dev/problems/{slug}"))
        .collect();
    let document = document();
    let in_document: BTreeSet<String> = document["components"]["x-problem-types"]
        .as_array()
        .expect("components.x-problem-types")
        .iter()
        .map(|kind| kind["type"].as_str().expect("a type URI").to_owned())
        .collect();
    assert_eq!(
        in_document, in_readme,
        "components.x-problem-types of openapi/bankgate.json lists README's problem types"
    );
    let webhooks: BTreeSet<&str> = document["webhooks"]
        .as_object()
        .expect("webhooks")
        .keys()
        .map(String::as_str)
        .collect();
    for event in [
        "consent.revoked",
        "consent.expired",
        "consent.expiring",
        "payment.status_changed",
    ] {
        assert!(webhooks.contains(event), "webhook {event} is documented");
    }
    let schemes = document["components"]["securitySchemes"]
        .as_object()
        .expect("securitySchemes");
    for scheme in ["oauth2", "dpop", "bearer", "operatorToken"] {
        assert!(schemes.contains_key(scheme), "security scheme {scheme}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_serves_the_routed_operations() {
    let gateway = TestGateway::start(StoreKind::Memory).await;
    let response = reqwest::get(format!("{}/openapi.json", gateway.base))
        .await
        .expect("the gateway answers");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.expect("JSON");
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["servers"][0]["url"], gateway.base.as_str());
    let operations: BTreeSet<(String, String)> = operations(&served)
        .into_iter()
        .map(|(path, method, _)| (path, method))
        .collect();
    assert_eq!(operations, routed(), "exactly the routed operations");
    assert_eq!(served["webhooks"], document()["webhooks"]);
}
