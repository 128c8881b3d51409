//! `notify-seed`: a platform with a webhook subscribes every consent of a purpose; one consent
//! goes through the real consent flow (gateway and sandbox bank), and COUNT - 1 more are
//! written through the store API beside it — each its own consent, its bank grant (the same
//! sandbox tokens) sealed under its own id with the gateway's grant key, as the broker seals
//! them — so that the refresh engine reads every one of them at the sandbox bank.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow};
use bankgate::adapters::Grants;
use bankgate::adapters::StoredGrant;
use bankgate::consent::Consents;
use bankgate::crypto::Sealer;
use bankgate::demo::{FlowTrace, PlatformClient, account_information};
use bankgate::model::Scope;
use futures_util::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

const REDIRECT_URI: &str = "http://127.0.0.1/bench/callback";

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    gateway: String,
    #[arg(long, env = "BANKGATE_ADMIN_TOKEN")]
    admin_token: String,
    /// Where the platform receives its notifications.
    #[arg(long)]
    webhook: String,
    #[arg(long, default_value = "demo-bank")]
    bank: String,
    #[arg(long, default_value = "balance-alerts")]
    purpose: String,
    /// Subscribed consents in all.
    #[arg(long, default_value_t = 100_000)]
    count: usize,
    /// The gateway's database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "BANKGATE_GRANT_KEY")]
    grant_key: String,
    #[arg(long, env = "BANKGATE_GRANT_KEY_ID", default_value = "k1")]
    grant_key_id: String,
    /// Store writes in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

pub async fn seed(args: Args) -> anyhow::Result<Value> {
    let started = Instant::now();
    let http = reqwest::Client::new();
    let client_id = format!(
        "notify-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let registered: Value = http
        .post(format!("{}/admin/clients", args.gateway))
        .bearer_auth(&args.admin_token)
        .json(&json!({
            "client_id": client_id,
            "name": "Notification Bench Platform",
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": [args.purpose],
            "token_endpoint_auth_method": "client_secret_basic",
            "webhook_url": args.webhook,
        }))
        .send()
        .await?
        .error_for_status()
        .context("registering the platform")?
        .json()
        .await?;
    let secret = registered["client_secret"]
        .as_str()
        .ok_or_else(|| anyhow!("no client_secret in {registered}"))?;
    let platform = PlatformClient::new(&args.gateway, &client_id, secret, REDIRECT_URI)?;

    // Every consent of the purpose, present and future, with the management token.
    let manage = platform.client_credentials().await?;
    let subscribed = platform
        .post_json(
            &manage,
            "/v1/subscriptions",
            &json!({"purpose": args.purpose, "events": ["balance.changed"], "mode": "data"}),
            &[],
        )
        .await?;
    anyhow::ensure!(
        (200..300).contains(&subscribed.status),
        "subscribing refused ({}): {}",
        subscribed.status,
        subscribed.json()
    );

    // One consent through the real flow.
    let detail = account_information(
        &args.bank,
        &args.purpose,
        &[Scope::Accounts, Scope::Balances],
        "u-notify-bench",
    );
    let pushed = platform.push(&detail).await?;
    let code = platform.approve(&pushed, &mut FlowTrace::default()).await?;
    platform.exchange(&code, &pushed).await?;

    let store = Arc::new(bankgate::store::pg::connect(&args.database_url, args.concurrency).await?);
    let sealer = Arc::new(Sealer::from_base64(&args.grant_key_id, &args.grant_key)?);
    let template = store
        .consents_of(&client_id, "u-notify-bench")
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the consent flow left no consent"))?;
    let grant = store
        .grant(&template.id)
        .await?
        .ok_or_else(|| anyhow!("the consent flow left no bank grant"))?;
    let plaintext = sealer.open(template.id.as_bytes(), &grant.sealed)?;
    let flow_seconds = started.elapsed().as_secs_f64();

    let seeding = Instant::now();
    futures_util::stream::iter(1..args.count)
        .map(|i| {
            let store = store.clone();
            let sealer = sealer.clone();
            let mut consent = template.clone();
            let plaintext = &plaintext;
            async move {
                consent.id = uuid::Uuid::new_v4().to_string();
                consent.user_ref = format!("u-notify-bench-{i}");
                store.insert_consent(&consent).await?;
                let sealed = sealer.seal(consent.id.as_bytes(), plaintext)?;
                store
                    .put_grant(&StoredGrant {
                        consent_id: consent.id.clone(),
                        sealed,
                        updated_at: grant.updated_at,
                    })
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_collect::<()>()
        .await?;
    Ok(json!({
        "client_id": client_id,
        "consents": args.count,
        "template_consent": template.id,
        "flow_seconds": flow_seconds,
        "seed_seconds": seeding.elapsed().as_secs_f64(),
    }))
}
