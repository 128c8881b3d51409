//! Helper of the `bench/` scripts (not a test, not shipped): `token` walks a platform through the
//! real consent flow of a running gateway and the bank-side flow of a sandbox bank and prints
//! both tokens; `load` is a fixed-rate (open-loop) HTTP load generator with an HDR histogram;
//! `audit-query` loads a large audit log by binary COPY and times the compliance queries,
//! the export and the verification over it; `notify-seed` subscribes many consents to
//! notifications. Each prints one JSON object on stdout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bankgate::adapters::{Bank, BankSession, ConsentRequest, Manifest, build_profile};
use bankgate::model::Scope;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

mod audit_query;
mod notify;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Registers a platform (admin API), obtains a consent-bound access token through PAR →
    /// consent screen → bank → token, and a bank token straight from the sandbox bank.
    Token {
        #[arg(long)]
        gateway: String,
        #[arg(long, env = "BANKGATE_ADMIN_TOKEN")]
        admin_token: String,
        /// The bank (its manifest id) at the gateway.
        #[arg(long, default_value = "demo-bank")]
        bank: String,
        #[arg(long, default_value = "balance-alerts")]
        purpose: String,
        /// The sandbox bank's origin, for the bank-side token (the baseline's credentials).
        #[arg(long)]
        sandbox: String,
        #[arg(long, env = "SANDBOX_CLIENT_SECRET")]
        sandbox_secret: String,
    },
    /// Sends GET requests to URL at a fixed rate, measuring each from its intended start (no
    /// coordinated omission).
    Load {
        url: String,
        /// `Name: value`, repeatable.
        #[arg(long = "header", short = 'H')]
        headers: Vec<String>,
        /// Requests per second.
        #[arg(long, default_value_t = 200)]
        rate: u64,
        /// Seconds.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Most requests in flight (and connections).
        #[arg(long, default_value_t = 64)]
        connections: usize,
    },
    /// Loads EVENTS audit events into a fresh database and times the compliance queries,
    /// export and verification.
    AuditQuery(audit_query::Args),
    /// Subscribes COUNT consents of a platform with a webhook to balance changes: one through
    /// the real consent flow, the others written beside it through the store API.
    NotifySeed(notify::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    let output = runtime.block_on(async {
        match cli.command {
            Command::Token {
                gateway,
                admin_token,
                bank,
                purpose,
                sandbox,
                sandbox_secret,
            } => {
                token(
                    &gateway,
                    &admin_token,
                    &bank,
                    &purpose,
                    &sandbox,
                    &sandbox_secret,
                )
                .await
            }
            Command::Load {
                url,
                headers,
                rate,
                duration,
                connections,
            } => load(&url, &headers, rate, duration, connections).await,
            Command::AuditQuery(args) => audit_query::run(args).await,
            Command::NotifySeed(args) => notify::seed(args).await,
        }
    })?;
    println!("{output}");
    Ok(())
}

const REDIRECT_URI: &str = "http://127.0.0.1/bench/callback";
/// Where the sandbox's authorization redirect goes; it only compares it.
const BANK_REDIRECT_URI: &str = "http://127.0.0.1:1/oauth/callback";

async fn token(
    gateway: &str,
    admin_token: &str,
    bank_id: &str,
    purpose: &str,
    sandbox: &str,
    sandbox_secret: &str,
) -> anyhow::Result<Value> {
    use bankgate::demo::{FlowTrace, PlatformClient, account_information};

    // 1. The operator registers a platform.
    let http = reqwest::Client::new();
    let client_id = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let registered: Value = http
        .post(format!("{gateway}/admin/clients"))
        .bearer_auth(admin_token)
        .json(&json!({
            "client_id": client_id,
            "name": "Bench Platform",
            "redirect_uris": [REDIRECT_URI],
            "allowed_purposes": [purpose],
            // Bearer tokens, so that the load replays one (needs allow_insecure_clients).
            "token_endpoint_auth_method": "client_secret_basic",
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

    // 2. The platform's consent flow.
    let platform = PlatformClient::new(gateway, &client_id, secret, REDIRECT_URI)?;
    let detail = account_information(
        bank_id,
        purpose,
        &[Scope::Accounts, Scope::Balances],
        "u-bench",
    );
    let pushed = platform.push(&detail).await?;
    let code = platform.approve(&pushed, &mut FlowTrace::default()).await?;
    let tokens = platform.exchange(&code, &pushed).await?;
    let accounts: Value = http
        .get(format!("{gateway}/v1/accounts"))
        .bearer_auth(&tokens.access_token)
        .header("x-user-present", "true")
        .header("psu-ip-address", "127.0.0.1")
        .send()
        .await?
        .error_for_status()
        .context("listing the accounts")?
        .json()
        .await?;
    let account_id = accounts["accounts"][0]["id"]
        .as_str()
        .or_else(|| accounts[0]["id"].as_str())
        .ok_or_else(|| anyhow!("no account in {accounts}"))?
        .to_owned();

    // 3. The bank-side flow, straight at the sandbox, for the baseline.
    let manifest: Manifest = toml::from_str(&format!(
        r#"
        id = "bench-bank"
        name = "Bench Bank"
        country = "DE"
        profile = "berlin-group"
        api_base_url = "{sandbox}"
        [oauth]
        issuer = "{sandbox}"
        authorization_endpoint = "{sandbox}/oauth/authorize"
        token_endpoint = "{sandbox}/oauth/token"
        client_id_env = "BENCH_BANK_CLIENT_ID"
        client_secret_env = "BENCH_BANK_CLIENT_SECRET"
        "#
    ))?;
    // The sandbox listens on loopback: the development opt-out.
    let egress = bankgate::egress::Egress::new(true);
    let bank = Bank::new(
        manifest,
        "bankgate".into(),
        Some(sandbox_secret.into()),
        &egress,
    )?;
    let profile = build_profile(&bank.manifest)?;
    let consent = profile
        .create_consent(
            &bank,
            &ConsentRequest {
                scopes: vec![Scope::Accounts, Scope::Balances],
                valid_until: chrono::Utc::now().date_naive() + chrono::Days::new(30),
                frequency_per_day: 4,
                recurring: true,
            },
        )
        .await?;
    let verifier = bankgate::crypto::random_token(32)?;
    let mut url = url::Url::parse(&bank.manifest.oauth.authorization_endpoint)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &bank.client_id)
            .append_pair("redirect_uri", BANK_REDIRECT_URI)
            .append_pair("state", "bench")
            .append_pair("code_challenge", &bankgate::crypto::pkce_s256(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("scope", &consent.oauth_scopes.join(" "));
        for (key, value) in &consent.authorization_params {
            query.append_pair(key, value);
        }
    }
    let response = bank.http.get(url).send().await?;
    let location = response
        .headers()
        .get("location")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| anyhow!("the sandbox did not redirect ({})", response.status()))?;
    let location = url::Url::parse(location)?;
    let code = location
        .query_pairs()
        .find(|(key, _)| key == "code")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| anyhow!("no code in {location}"))?;
    let bank_tokens: Value = bank
        .http
        .post(&bank.manifest.oauth.token_endpoint)
        .basic_auth(&bank.client_id, Some(sandbox_secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", BANK_REDIRECT_URI),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let bank_token = bank_tokens["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no bank access token in {bank_tokens}"))?
        .to_owned();
    let session = BankSession {
        bank: &bank,
        access_token: &bank_token,
        bank_consent_id: consent.id.as_deref(),
    };
    let bank_accounts = profile.accounts(session).await?;
    let bank_account = bank_accounts
        .first()
        .ok_or_else(|| anyhow!("the sandbox lists no account"))?
        .bank_ref
        .clone();
    Ok(json!({
        "client_id": client_id,
        "access_token": tokens.access_token,
        "consent_id": tokens.consent_id,
        "account_id": account_id,
        "bank_token": bank_token,
        "bank_consent_id": consent.id,
        "bank_account": bank_account,
    }))
}

/// What the load generator saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    non_2xx: u64,
    errors: u64,
}

async fn load(
    url: &str,
    headers: &[String],
    rate: u64,
    duration: u64,
    connections: usize,
) -> anyhow::Result<Value> {
    if rate == 0 {
        bail!("--rate must be positive");
    }
    let mut header_map = reqwest::header::HeaderMap::new();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header}: expected `Name: value`"))?;
        header_map.insert(
            reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?,
            reqwest::header::HeaderValue::from_str(value.trim())?,
        );
    }
    let client = reqwest::Client::builder()
        .default_headers(header_map)
        .pool_max_idle_per_host(connections)
        .http1_only()
        .build()?;
    let histogram = Arc::new(std::sync::Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
    ));
    let tally = Arc::new(std::sync::Mutex::new(Tally::default()));
    let permits = Arc::new(tokio::sync::Semaphore::new(connections));
    let total = rate * duration;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let intended = started + interval * i as u32;
        tokio::time::sleep_until(intended).await;
        // Waiting for a free connection counts: latency runs from the intended start.
        let permit = permits.clone().acquire_owned().await?;
        let (client, url) = (client.clone(), url.to_owned());
        let (histogram, tally) = (histogram.clone(), tally.clone());
        tasks.spawn(async move {
            let _permit = permit;
            let outcome = match client.get(&url).send().await {
                Ok(response) => {
                    let status = response.status();
                    match response.bytes().await {
                        Ok(_) if status.is_success() => Ok(true),
                        Ok(_) => Ok(false),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            let micros = intended.elapsed().as_micros().max(1) as u64;
            let _ = histogram
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .record(micros.min(60_000_000));
            let mut tally = tally
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match outcome {
                Ok(true) => tally.ok += 1,
                Ok(false) => tally.non_2xx += 1,
                Err(_) => tally.errors += 1,
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed().as_secs_f64();
    let histogram = histogram
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let tally = tally
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let ms = |quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    Ok(json!({
        "rate_target": rate,
        "duration_s": duration,
        "connections": connections,
        "requests": total,
        "ok": tally.ok,
        "non_2xx": tally.non_2xx,
        "errors": tally.errors,
        "achieved_rps": total as f64 / elapsed,
        "latency_ms": {
            "p50": ms(0.5),
            "p90": ms(0.9),
            "p99": ms(0.99),
            "p99_9": ms(0.999),
            "max": histogram.max() as f64 / 1000.0,
            "mean": histogram.mean() / 1000.0,
        },
    }))
}
