//! The demo's notifications step: a messenger subscribes a fraud-alerts consent, the bank's
//! data moves, the refresh engine notices, and the messenger's receiver — verifying every
//! Security Event Token against the gateway's JWKS, as `examples/messenger-node` does — tells
//! its user "Balance of Main Account: … (was …)" and asks about the unusual payment.
//!
//! The receiver runs in this process unless `BANKGATE_DEMO_WEBHOOK_URL` names another one
//! (the Node example's, in `.ci/run`): the platform's webhook is then that URL and the demo
//! only says what it sent.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, bail};
use bankgate_sandbox::ledger::{CARD_PENDING, Posting};
use serde_json::{Value, json};

use super::{Demo, PlatformClient, REDIRECT_URI, USER, account_information};
use crate::jose::ClientKey;
use crate::model::Scope;
use crate::oauth::Role;
use crate::oauth::registration::Registration;

/// The demo user's main account at every sandbox bank (a sandbox customer's, as the payment
/// step names its friend's).
const MAIN_ACCOUNT_IBAN: &str = "DE92999900000012345601";

/// Where the demo's events go instead of its own receiver.
pub const WEBHOOK_URL_VAR: &str = "BANKGATE_DEMO_WEBHOOK_URL";

/// The address the demo's gateway listens on (a free port when unset).
pub const LISTEN_VAR: &str = "BANKGATE_DEMO_LISTEN";

/// The messenger's receiver: what it told its user.
struct Receiver {
    url: String,
    told: Arc<Mutex<Vec<String>>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

/// What the messenger remembers of its user's balances (to say what they were).
type Remembered = Arc<Mutex<std::collections::HashMap<String, String>>>;

impl Demo {
    /// Step 13: notifications. A messenger platform (its webhook at its receiver) gets a
    /// fraud-alerts consent at the first bank, subscribes it, and is told — once the bank's
    /// data moved and the refresh engine ran — of the new balance, the new transaction and the
    /// payment that looks unusual.
    pub(super) async fn notifications(&mut self) -> anyhow::Result<()> {
        let external = std::env::var(WEBHOOK_URL_VAR).ok();
        let remembered: Remembered = Arc::default();
        let receiver = match &external {
            Some(_) => None,
            None => Some(self.receiver(remembered.clone()).await?),
        };
        let webhook = external
            .clone()
            .or_else(|| receiver.as_ref().map(|receiver| receiver.url.clone()))
            .context("no webhook")?;
        let client = self.register_messenger(&webhook).await?;
        let mut detail = account_information(
            &self.first.id,
            "fraud-alerts",
            &[Scope::Accounts, Scope::Balances, Scope::Transactions],
            USER,
        );
        detail.history_days = 30;
        let (token, _) = client.connect(&detail).await?;
        let subscription = client
            .post_json(
                &token.access_token,
                "/v1/subscriptions",
                &json!({
                    "events": ["balance.changed", "transactions.created", "fraud.signal"],
                    "mode": "data",
                }),
                &[],
            )
            .await?;
        self.step("13. A messenger subscribes: balance changes, new payments, fraud signals");
        let bank_name = self.first.name.clone();
        self.say(format_args!(
            "webhook={webhook} consent_id={} (fraud-alerts at {bank_name})",
            token.consent_id
        ));
        self.answered(
            subscription.status,
            &subscription.json(),
            201,
            "the subscription was refused",
        )?;
        // The messenger shows its user the balances it has now (a platform call, from the
        // same daily budget the refreshes spend).
        let (status, accounts) = client.get(&token.access_token, "/v1/accounts").await?;
        if status != 200 {
            bail!("accounts request failed");
        }
        for account in accounts["accounts"].as_array().cloned().unwrap_or_default() {
            let id = account["id"].as_str().unwrap_or_default();
            let (status, balances) = client
                .get(&token.access_token, &format!("/v1/accounts/{id}/balances"))
                .await?;
            if status == 200
                && let Some(shown) = shown_balance(&balances["balances"])
            {
                remembered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(id.to_owned(), shown);
            }
        }

        let engine = self.app.notifier();
        let maintenance = self.app.maintenance()?;
        let now = chrono::Utc::now();
        let first = engine.run_once(now).await?;
        self.say(format_args!(
            "refresh engine: {} consent(s) read; the first read only records what the accounts \
             hold (keyed hashes, no data)",
            first.refreshed
        ));
        let ledger = self.ledger.clone().context("no sandbox ledger")?;
        ledger.post(
            MAIN_ACCOUNT_IBAN,
            Posting {
                amount: rust_decimal::Decimal::new(-89_900, 2),
                currency: "EUR".into(),
                counterparty: "Electronics Wholesale Lagos".into(),
                description: "Card payment abroad".into(),
                country: Some("NG".into()),
                pending_for: CARD_PENDING,
            },
        );
        self.say(format_args!(
            "the bank: a card payment abroad of 899.00 EUR on the user's Main Account"
        ));
        // The next refresh is due within the purpose's pace (fraud-alerts: hourly).
        let later = now + chrono::Duration::minutes(70);
        let report = engine.run_once(later).await?;
        let delivered = maintenance.run_once(later).await?;
        self.say(format_args!(
            "an hour later: {} refresh, {} event(s) signed and queued (each release audited \
             first), {} delivered",
            report.refreshed, report.events, delivered.deliveries.delivered
        ));
        if report.events == 0 {
            bail!("the refresh announced nothing");
        }
        ledger.post(
            MAIN_ACCOUNT_IBAN,
            Posting {
                amount: rust_decimal::Decimal::new(312_044, 2),
                currency: "EUR".into(),
                counterparty: "Acme Software GmbH".into(),
                description: "Gehalt".into(),
                country: None,
                pending_for: chrono::TimeDelta::zero(),
            },
        );
        let evening = later + chrono::Duration::minutes(70);
        let report = engine.run_once(evening).await?;
        let delivered = maintenance.run_once(evening).await?;
        self.say(format_args!(
            "the bank: the salary, 3,120.44 EUR; an hour later: {} event(s), {} delivered",
            report.events, delivered.deliveries.delivered
        ));
        if let Some(receiver) = receiver {
            let told = receiver
                .told
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let _ = receiver.stop.send(());
            self.step("14. The messenger tells its user (each event verified against the JWKS)");
            for line in &told {
                self.say(format_args!("{line}"));
            }
            if !told.iter().any(|line| line.starts_with("Balance of ")) {
                bail!("the messenger was not told of the new balance");
            }
            if !told.iter().any(|line| line.starts_with("Fraud alert")) {
                bail!("the messenger was not told of the unusual payment");
            }
        }
        Ok(())
    }

    /// Registers the messenger: a FAPI platform like the demo's first, its webhook at `url`.
    async fn register_messenger(&mut self, url: &str) -> anyhow::Result<PlatformClient> {
        let assertion_key = ClientKey::generate_es256()?;
        let registered = self
            .app
            .registrar
            .register(
                &self.app.policies.current(),
                Registration {
                    client_id: "demo-alerts".into(),
                    name: "Demo Alerts".into(),
                    role: Role::Platform,
                    redirect_uris: vec![REDIRECT_URI.into()],
                    allowed_purposes: vec!["fraud-alerts".into()],
                    jwks: Some(assertion_key.jwks()),
                    webhook_url: Some(url.to_owned()),
                    ..Registration::default()
                },
            )
            .await?;
        Ok(
            PlatformClient::new(&self.base, &registered.client_id, "", REDIRECT_URI)?
                .with_private_key_jwt(assertion_key)
                .with_dpop(ClientKey::generate_ed25519()?),
        )
    }

    /// Starts the messenger's receiver: it verifies each SET against the gateway's JWKS
    /// (ES256, `typ` `secevent+jwt`, `iss` the gateway, `aud` the messenger) and turns its
    /// events into what the messenger tells its user.
    async fn receiver(&self, remembered: Remembered) -> anyhow::Result<Receiver> {
        let told: Arc<Mutex<Vec<String>>> = Arc::default();
        let jwks_url = format!("{}/.well-known/jwks.json", self.base);
        let issuer = self.base.clone();
        let kept = told.clone();
        let app = axum::Router::new().route(
            "/events",
            axum::routing::post(move |body: String| {
                let (kept, remembered) = (kept.clone(), remembered.clone());
                let (jwks_url, issuer) = (jwks_url.clone(), issuer.clone());
                async move {
                    match verify(&jwks_url, &issuer, &body).await {
                        Ok(claims) => {
                            let lines = tell(&claims, &remembered);
                            kept.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .extend(lines);
                            axum::http::StatusCode::ACCEPTED
                        }
                        Err(error) => {
                            kept.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(format!("(refused an event: {error})"));
                            axum::http::StatusCode::BAD_REQUEST
                        }
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/events", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::warn!(%error, "the demo's receiver stopped");
            }
        });
        Ok(Receiver { url, told, stop })
    }
}

/// Verifies a SET against the gateway's published keys; its claims.
async fn verify(jwks_url: &str, issuer: &str, token: &str) -> anyhow::Result<Value> {
    let header = jsonwebtoken::decode_header(token)?;
    if header.typ.as_deref() != Some("secevent+jwt") {
        bail!("not a security event token");
    }
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(jwks_url).await?.json().await?;
    let jwk = jwks
        .find(header.kid.as_deref().context("no kid")?)
        .context("the kid is not the gateway's")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&["demo-alerts"]);
    validation.set_required_spec_claims(&["iss", "aud", "iat"]);
    validation.validate_exp = false;
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk)?;
    Ok(jsonwebtoken::decode::<Value>(token, &key, &validation)?.claims)
}

/// What the messenger tells its user of one SET's events.
fn tell(claims: &Value, remembered: &Remembered) -> Vec<String> {
    let mut lines = Vec::new();
    for (uri, detail) in claims["events"].as_object().cloned().unwrap_or_default() {
        let event = uri.rsplit('/').next().unwrap_or_default();
        let account = detail["account"]["display_name"]
            .as_str()
            .unwrap_or("your account");
        match event {
            "balance.changed" => {
                let Some(shown) = shown_balance(&detail["balances"]) else {
                    continue;
                };
                let account_id = detail["account_id"].as_str().unwrap_or_default().to_owned();
                let was = remembered
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(account_id, shown.clone());
                let mut line = format!("Balance of {account}: {shown}");
                if let Some(was) = was {
                    let amount = was.split(' ').next().unwrap_or_default();
                    let _ = write!(line, " (was {amount})");
                }
                lines.push(line);
            }
            "transactions.created" => {
                for transaction in detail["transactions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    lines.push(format!(
                        "New on {account}: {} {} {} ({})",
                        grouped(transaction["amount"].as_str().unwrap_or("?")),
                        transaction["currency"].as_str().unwrap_or(""),
                        transaction["counterparty_name"].as_str().unwrap_or(""),
                        transaction["status"].as_str().unwrap_or(""),
                    ));
                }
            }
            "fraud.signal" => {
                let signal = &detail["signal"];
                let what = match detail["transaction"].as_object() {
                    Some(transaction) => format!(
                        "{} {} to {}{}",
                        grouped(
                            transaction
                                .get("amount")
                                .and_then(Value::as_str)
                                .unwrap_or("?")
                                .trim_start_matches('-')
                        ),
                        transaction
                            .get("currency")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                        transaction
                            .get("counterparty_name")
                            .and_then(Value::as_str)
                            .unwrap_or("someone"),
                        transaction
                            .get("counterparty_country")
                            .and_then(Value::as_str)
                            .map(|country| format!(" ({country})"))
                            .unwrap_or_default(),
                    ),
                    None => format!("the balance of {account}"),
                };
                lines.push(format!(
                    "Fraud alert ({}): {what}. {} — is this you?",
                    signal["id"].as_str().unwrap_or("?"),
                    signal["title"].as_str().unwrap_or(""),
                ));
            }
            _ => {}
        }
    }
    lines
}

/// The balance a messenger shows: the available one, else the first; "1,204.55 EUR".
fn shown_balance(balances: &Value) -> Option<String> {
    let balances = balances.as_array()?;
    let balance = balances
        .iter()
        .find(|balance| balance["type"] == "interim_available")
        .or_else(|| balances.first())?;
    Some(format!(
        "{} {}",
        grouped(balance["amount"].as_str()?),
        balance["currency"].as_str().unwrap_or("")
    ))
}

/// A decimal amount with thousands grouped by commas: "-1204.55" → "-1,204.55".
fn grouped(amount: &str) -> String {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    let mut grouped = String::new();
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn amounts_are_grouped_by_thousands() {
        for (amount, expected) in [
            ("1204.55", "1,204.55"),
            ("-1356.92", "-1,356.92"),
            ("12.50", "12.50"),
            ("1234567", "1,234,567"),
            ("100.00", "100.00"),
        ] {
            assert_eq!(grouped(amount), expected);
        }
    }
}
