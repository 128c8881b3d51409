//! What operators configure (issue 5, items 2 and 4 of "what it must do"): signing key rotation
//! with two configured key files, and FAPI client registration through `bankgate platforms
//! add` (the real binary against PostgreSQL) and `POST /admin/clients`.

use std::path::{Path, PathBuf};
use std::process::Command;

use bankgate::demo::{PlatformClient, account_information};
use bankgate::jose::ClientKey;
use bankgate::jose::keys::SigningKey;
use bankgate::model::Scope;
use bankgate::oauth::AuthMethod;
use bankgate::oauth::Clients;
use chrono::Utc;
use jsonwebtoken::{Algorithm, Header};
use serde_json::{Value, json};

use super::support::{Options, REDIRECT_URI, StoreKind, TestGateway, pg};

const BALANCE_SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];
const OPERATOR_TOKEN: &str = "operator-token-for-tests";

on_both_stores!(
    the_admin_api_registers_fapi_clients,
    platforms_are_fapi_clients_by_default
);

/// A scratch directory of the test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("bankgate-operator-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `claims` signed as an access token (`typ: at+jwt`) by the key in `path`.
fn sign_with(path: &Path, claims: &Value) -> String {
    let key = SigningKey::load(path).unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Key rotation with two configured key files: after the rotation the new key signs, the JWKS
/// lists both, and a token the previous key signed keeps working until it expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_rotation_keeps_old_tokens_until_they_expire() {
    let scratch = Scratch::new();
    let old_key = scratch.write("old.pem", &SigningKey::generate_pem().unwrap());
    let new_key = scratch.write("new.pem", &SigningKey::generate_pem().unwrap());
    let unknown_key = scratch.write("unknown.pem", &SigningKey::generate_pem().unwrap());
    let (old_kid, new_kid) = (
        SigningKey::load(&old_key).unwrap().kid,
        SigningKey::load(&new_key).unwrap().kid,
    );

    let before = TestGateway::start_with(
        StoreKind::Postgres,
        Options {
            signing_key_file: Some(old_key.clone()),
            ..Options::default()
        },
    )
    .await;
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-rotate");
    let (token, _) = before.platform.connect(&detail).await.unwrap();
    assert_eq!(kid_of(&token.access_token), old_kid);

    // The rotated instance: `signing_key_file` = the new key, `previous_signing_key_files` =
    // the old one.
    let after = before
        .rotated_instance(&new_key, std::slice::from_ref(&old_key))
        .await;
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", after.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [new_kid.as_str(), old_kid.as_str()],
        "current key first"
    );

    // The token the old key signed still opens the API after the rotation…
    let (status, body) = after
        .platform
        .get(&token.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    // …and new tokens are signed by the new key, which the old configuration does not know.
    let refreshed = after
        .platform
        .refresh(token.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(kid_of(&refreshed.access_token), new_kid);
    let (status, _) = after
        .platform
        .get(&refreshed.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let (status, _) = before
        .platform
        .get(&refreshed.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(
        status, 401,
        "the old configuration does not verify the new key"
    );

    // Until it expires: the same claims signed by the old key verify while `exp` is ahead,
    // and not once it has passed (beyond the 5 s leeway); a key never configured never does.
    let claims =
        serde_json::to_value(before.app.tokens.verify(&token.access_token).unwrap()).unwrap();
    let now = Utc::now().timestamp();
    let with_times = |exp: i64, jti: &str| {
        let mut claims = claims.clone();
        claims["iat"] = json!(exp - 300);
        claims["exp"] = json!(exp);
        claims["jti"] = json!(jti);
        claims
    };
    // Each on record as issued, so that the signature is what decides.
    for jti in ["rotation-live", "rotation-expired", "rotation-stranger"] {
        after
            .app
            .store
            .record_access_token(&bankgate::oauth::IssuedToken {
                jti: jti.to_owned(),
                client_id: claims["client_id"].as_str().unwrap().to_owned(),
                consent_id: claims["sub"].as_str().map(str::to_owned),
                expires_at: Utc::now() + chrono::Duration::minutes(5),
            })
            .await
            .unwrap();
    }
    let live = sign_with(&old_key, &with_times(now + 60, "rotation-live"));
    let (status, body) = after.platform.get(&live, "/v1/accounts").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let expired = sign_with(&old_key, &with_times(now - 30, "rotation-expired"));
    let (status, _) = after.platform.get(&expired, "/v1/accounts").await.unwrap();
    assert_eq!(status, 401);
    let stranger = sign_with(&unknown_key, &with_times(now + 60, "rotation-stranger"));
    let (status, _) = after.platform.get(&stranger, "/v1/accounts").await.unwrap();
    assert_eq!(status, 401);
}

/// The grant key `bankgate platforms …` runs with in these tests.
const TEST_GRANT_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Runs `bankgate platforms add ARGS` against `database_url`.
fn platforms_add(database_url: &str, args: &[&str]) -> std::process::Output {
    platforms_add_with(database_url, args, "false")
}

/// `bankgate platforms add` with `BANKGATE_ALLOW_INSECURE_CLIENTS` set to `insecure`.
fn platforms_add_with(database_url: &str, args: &[&str], insecure: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bankgate"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("BANKGATE_ALLOW_INSECURE_CLIENTS", insecure)
        .env("DATABASE_URL", database_url)
        .env("BANKGATE_GRANT_KEY", TEST_GRANT_KEY)
        .env_remove("BANKGATE_CONFIG")
        .env("RUST_LOG", "warn")
        .args(["platforms", "add"])
        .args(args)
        .output()
        .expect("the bankgate binary runs")
}

/// `bankgate platforms add` with the FAPI flags, the real binary against a PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platforms_add_registers_fapi_clients() {
    let database = pg::TestDatabase::create();
    let scratch = Scratch::new();
    let key = ClientKey::generate_es256().unwrap();
    let jwks_file = scratch.write("jwks.json", &key.jwks().to_string());
    let jwks_path = jwks_file.to_str().unwrap();

    let output = platforms_add(
        &database.url,
        &[
            "--client-id",
            "cli-fapi",
            "--name",
            "CLI FAPI",
            "--redirect-uri",
            REDIRECT_URI,
            "--purpose",
            "balance-alerts",
            "--region",
            "UK",
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_path,
            "--dpop-bound-access-tokens",
            "--webhook-url",
            "https://platform.example/hooks",
        ],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("private_key_jwt (no secret)"), "{stdout}");
    assert!(!stdout.contains("client_secret"), "{stdout}");

    let store = bankgate::store::pg::connect(&database.url, 2)
        .await
        .unwrap();
    let client = store.client("cli-fapi").await.unwrap().expect("registered");
    // Without --dpop-bound-access-tokens too: DPoP is the default with private_key_jwt.
    let output = platforms_add(
        &database.url,
        &[
            "--client-id",
            "cli-fapi-default",
            "--name",
            "CLI FAPI",
            "--redirect-uri",
            REDIRECT_URI,
            "--jwks-file",
            jwks_path,
        ],
    );
    assert!(output.status.success(), "{output:?}");
    let default = store.client("cli-fapi-default").await.unwrap().unwrap();
    assert_eq!(
        default.token_endpoint_auth_method,
        AuthMethod::PrivateKeyJwt
    );
    assert!(default.dpop_bound_access_tokens);
    assert_eq!(client.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    assert_eq!(client.jwks, Some(key.jwks()));
    assert!(client.dpop_bound_access_tokens);
    assert_eq!(
        client.webhook_url.as_deref(),
        Some("https://platform.example/hooks")
    );
    assert_eq!(client.region, "UK");
    assert_eq!(client.redirect_uris, [REDIRECT_URI]);
    assert_eq!(
        client.secret_hash, "",
        "no secret for a private_key_jwt client"
    );

    // The default is private_key_jwt with DPoP: without keys, nothing is registered.
    let basic = [
        "--client-id",
        "cli-basic",
        "--name",
        "CLI Basic",
        "--redirect-uri",
        REDIRECT_URI,
        "--purpose",
        "balance-alerts",
    ];
    let output = platforms_add(&database.url, &basic);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("jwks"));
    // A platform with a secret is refused unless the development setting is on.
    let basic = [
        &basic[..],
        &["--token-endpoint-auth-method", "client_secret_basic"],
    ]
    .concat();
    let output = platforms_add(&database.url, &basic);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("allow_insecure_clients"), "{stderr}");
    assert_eq!(store_client(&database.url, "cli-basic").await, None);
    // With it: a secret, shown once and stored hashed, and bearer tokens.
    let output = platforms_add_with(&database.url, &basic, "true");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let secret = stdout
        .lines()
        .find_map(|line| line.strip_prefix("client_secret:"))
        .map(str::trim)
        .expect("the secret is printed once");
    let client = store.client("cli-basic").await.unwrap().unwrap();
    assert_eq!(
        client.token_endpoint_auth_method,
        AuthMethod::ClientSecretBasic
    );
    assert!(!client.dpop_bound_access_tokens && client.jwks.is_none());
    // Stored as its digest under the grant key (id `k1` by default), never in the clear.
    let sealer = bankgate::crypto::Sealer::from_base64("k1", TEST_GRANT_KEY).unwrap();
    assert_eq!(
        sealer.check_secret(secret, Some(&client.secret_hash)),
        bankgate::crypto::SecretCheck::Matches
    );
    assert!(!client.secret_hash.contains(secret));

    // Refused, with the reason, and nothing stored.
    for (args, reason) in [
        (
            vec![
                "--client-id",
                "no-keys",
                "--token-endpoint-auth-method",
                "private_key_jwt",
            ],
            "jwks",
        ),
        (
            vec![
                "--client-id",
                "bad-method",
                "--token-endpoint-auth-method",
                "client_secret_jwt",
            ],
            "token_endpoint_auth_method",
        ),
        (
            vec![
                "--client-id",
                "bad-hook",
                "--webhook-url",
                "http://platform.example/hooks",
            ],
            "https",
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--name", "X", "--redirect-uri", REDIRECT_URI]);
        let output = platforms_add(&database.url, &all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
        assert_eq!(store.client(args[1]).await.unwrap(), None);
    }
}

async fn store_client(url: &str, client_id: &str) -> Option<bankgate::oauth::Client> {
    let store = bankgate::store::pg::connect(url, 1).await.unwrap();
    store.client(client_id).await.unwrap()
}

async fn register(gateway: &TestGateway, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/admin/clients", gateway.base))
        .bearer_auth(OPERATOR_TOKEN)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /admin/clients` with the FAPI fields: the client is stored as asked and can do
/// exactly what its registration says.
async fn the_admin_api_registers_fapi_clients(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(OPERATOR_TOKEN.into()),
            ..Options::default()
        },
    )
    .await;
    let key = ClientKey::generate_es256().unwrap();
    let registration = json!({
        "client_id": "admin-fapi",
        "name": "Admin FAPI",
        "redirect_uris": [REDIRECT_URI],
        "allowed_purposes": ["balance-alerts"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": key.jwks(),
        "dpop_bound_access_tokens": true,
        "webhook_url": "https://platform.example/hooks",
    });
    let (status, body) = register(&gateway, &registration).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert!(body.get("client_secret").is_none(), "{body}");
    let stored = gateway
        .app
        .store
        .client("admin-fapi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.jwks, Some(key.jwks()));
    assert!(stored.dpop_bound_access_tokens);
    assert_eq!(
        stored.webhook_url.as_deref(),
        Some("https://platform.example/hooks")
    );

    // It authenticates with its key only, and gets nothing without a DPoP proof.
    let dpop = ClientKey::generate_ed25519().unwrap();
    let dpop_jkt = dpop.thumbprint().to_owned();
    let client = PlatformClient::new(&gateway.base, "admin-fapi", "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(key);
    let error = client.client_credentials().await.unwrap_err().to_string();
    assert!(error.contains("invalid_dpop_proof"), "{error}");
    let client = client.with_dpop(dpop);
    let token = client.client_credentials().await.unwrap();
    assert_eq!(
        gateway.app.tokens.verify(&token).unwrap().jkt(),
        Some(dpop_jkt.as_str())
    );

    // Refused registrations, each for its reason; none is stored.
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = registration.clone();
        edit(&mut body);
        body
    };
    let cases = [
        (
            with(&|body| {
                body["client_id"] = json!("no-keys");
                body.as_object_mut().unwrap().remove("jwks");
            }),
            "jwks",
        ),
        (
            with(&|body| {
                body["client_id"] = json!("private-key");
                body["jwks"]["keys"][0]["d"] = json!("AAAA");
            }),
            "private",
        ),
        (
            with(&|body| {
                body["client_id"] = json!("plain-hook");
                body["webhook_url"] = json!("http://platform.example/hooks");
            }),
            "https",
        ),
    ];
    for (body, reason) in cases {
        let (status, problem) = register(&gateway, &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert!(problem.to_string().contains(reason), "{problem}");
        let id = body["client_id"].as_str().unwrap();
        assert_eq!(gateway.app.store.client(id).await.unwrap(), None);
    }
    let (status, _) = register(&gateway, &with(&|body| body["dpop_bound"] = json!(true))).await;
    assert!(
        (400..500).contains(&status),
        "unknown fields are refused: {status}"
    );
    let anonymous = reqwest::Client::new()
        .post(format!("{}/admin/clients", gateway.base))
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// FAPI 2.0 by default (no `allow_insecure_clients`): the metadata offers `private_key_jwt`
/// only; a platform registers with keys and DPoP-bound tokens unless it asks otherwise, and
/// asking for a secret or bearer tokens is refused with a problem saying why; a platform's
/// token without a DPoP proof is refused, so no bearer token reads data; the FAPI platform
/// reads its data. Compliance clients keep their secret (the console signs in with one).
async fn platforms_are_fapi_clients_by_default(kind: StoreKind) {
    let gateway = TestGateway::start_with(
        kind,
        Options {
            admin_token: Some(OPERATOR_TOKEN.into()),
            fapi_only: true,
            ..Options::default()
        },
    )
    .await;
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        gateway.base
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );
    assert_eq!(
        metadata["revocation_endpoint_auth_methods_supported"],
        json!(["private_key_jwt"])
    );

    // Asking for a secret, or for bearer tokens: a problem saying why, and nothing stored.
    let key = ClientKey::generate_es256().unwrap();
    for (client_id, extra) in [
        (
            "secret",
            json!({"token_endpoint_auth_method": "client_secret_basic"}),
        ),
        (
            "bearer",
            json!({"jwks": key.jwks(), "dpop_bound_access_tokens": false}),
        ),
    ] {
        let mut body = json!({
            "client_id": client_id,
            "name": client_id,
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": ["balance-alerts"],
        });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let response = reqwest::Client::new()
            .post(format!("{}/admin/clients", gateway.base))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{client_id}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json",
            "{client_id}"
        );
        let problem: Value = response.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "https://bankgate.dev/problems/invalid-request"
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("private_key_jwt")
                && detail.contains("DPoP")
                && detail.contains("allow_insecure_clients"),
            "{detail}"
        );
        assert_eq!(gateway.app.store.client(client_id).await.unwrap(), None);
    }

    // Keys alone: private_key_jwt with DPoP-bound tokens.
    let (status, body) = register(
        &gateway,
        &json!({
            "client_id": "keys-only",
            "name": "Keys only",
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": ["balance-alerts"],
            "jwks": key.jwks(),
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(body["dpop_bound_access_tokens"], true);

    // The FAPI platform reads its data; without DPoP it gets no token to read with.
    let detail = account_information("demo-bank", "balance-alerts", BALANCE_SCOPES, "u-fapi");
    let (tokens, _) = gateway.platform.connect(&detail).await.unwrap();
    assert_eq!(tokens.token_type, "DPoP");
    let (status, _) = gateway
        .platform
        .get(&tokens.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let bearer = gateway.platform.without_dpop().unwrap();
    let error = bearer.connect(&detail).await.unwrap_err().to_string();
    assert!(error.contains("invalid_dpop_proof"), "{error}");
    let (status, _) = bearer
        .get(&tokens.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 401, "a DPoP-bound token is no bearer token");

    // Platforms stored before FAPI was the default (a secret; keys without DPoP) get no
    // tokens: a secret is refused, and a key without a proof is refused.
    let mut legacy = gateway
        .app
        .store
        .client("keys-only")
        .await
        .unwrap()
        .unwrap();
    legacy.client_id = "legacy-bearer".into();
    legacy.dpop_bound_access_tokens = false;
    gateway.app.store.insert_client(&legacy).await.unwrap();
    let legacy_client = PlatformClient::new(&gateway.base, "legacy-bearer", "", REDIRECT_URI)
        .unwrap()
        .with_private_key_jwt(key);
    let error = legacy_client
        .client_credentials()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("invalid_dpop_proof"), "{error}");
    legacy.client_id = "legacy-secret".into();
    legacy.token_endpoint_auth_method = AuthMethod::ClientSecretBasic;
    legacy.jwks = None;
    legacy.secret_hash = gateway.app.sealer.digest_secret("s3cret-of-old");
    gateway.app.store.insert_client(&legacy).await.unwrap();
    let legacy_client = PlatformClient::new(
        &gateway.base,
        "legacy-secret",
        "s3cret-of-old",
        REDIRECT_URI,
    )
    .unwrap();
    let error = legacy_client
        .client_credentials()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("invalid_client") && error.contains("allow_insecure_clients"),
        "{error}"
    );

    // The compliance client signs in with its secret, as the console does.
    gateway.compliance.client_credentials().await.unwrap();
}
