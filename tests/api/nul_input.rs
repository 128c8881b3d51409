//! U+0000 in caller input (issue 11, item 13): PostgreSQL text cannot hold it, so it is refused
//! up front with 400 wherever input reaches the store, never a 500 and never an export that
//! starts and then breaks off. On both stores, so that they answer alike.

use bankgate::demo::Answer;

use super::support::{StoreKind, TestGateway};

on_both_stores!(nul_in_audit_filters_is_refused);

/// Asserts a 400 problem whose detail names `field` and U+0000.
#[track_caller]
fn assert_refused(answer: &Answer, field: &str, what: &str) {
    let body = answer.json();
    assert_eq!(answer.status, 400, "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(field) && detail.contains("U+0000"),
        "{what}: {body}"
    );
}

async fn nul_in_audit_filters_is_refused(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let token = gateway.compliance.client_credentials().await.unwrap();
    let get = |path: String| {
        let token = token.clone();
        let compliance = &gateway.compliance;
        async move {
            compliance
                .send(reqwest::Method::GET, &path, Some(&token), None)
                .await
                .unwrap()
        }
    };
    for field in ["platform", "bank", "consent", "purpose", "user_ref"] {
        for endpoint in ["events", "export?format=csv&", "export?"] {
            let separator = if endpoint.ends_with('&') || endpoint.ends_with('?') {
                ""
            } else {
                "?"
            };
            let path = format!("/v1/audit/{endpoint}{separator}{field}=a%00b");
            assert_refused(&get(path.clone()).await, field, &path);
            // Control: the same filter without the NUL is answered.
            let path = format!("/v1/audit/{endpoint}{separator}{field}=ab");
            assert_eq!(get(path.clone()).await.status, 200, "{path}");
        }
    }
    for field in ["platform", "bank", "purpose"] {
        let path = format!("/v1/audit/summary?{field}=%00");
        assert_refused(&get(path.clone()).await, field, &path);
    }
}
