//! `bankgate demo`: an in-memory gateway with the bundled sandbox banks, and one platform's
//! story told step by step — registered, a user's consent at one bank, the data read, a second
//! bank of another standard side by side, a request out of purpose refused, a friend paid by
//! message, the audit trail of it all, and a messenger told of a balance change and an
//! unusual payment (`demo/messenger.rs`). [`run`] reads as that story; each step is a method
//! of `Demo` that does one thing and prints what it saw.
//!
//! [`PlatformClient`] (`demo/platform.rs`) is the platform's side of the flow, as a social
//! platform would write it; the end-to-end tests drive the gateway with it too.

mod messenger;
mod payment;
mod person;
mod platform;

pub use platform::{Answer, FlowTrace, PlatformClient, Pushed, TokenResponse, account_information};

use std::fmt::Write as _;
use std::sync::Arc;

use anyhow::{Context, bail};
use bankgate_sandbox::ledger::Ledger;

use crate::app::App;
use crate::gateway::{Gateway, embedded_config};
use crate::jose::ClientKey;
use crate::model::Scope;
use crate::oauth::registration::Registration;
use crate::oauth::{AuthMethod, Role};

/// The profiles the demo prefers, in order: it walks the user through the first bank of the
/// first profile present and then the first bank of the next one (banks are data: the demo
/// picks them by standard, never by name).
const DEMO_PROFILES: [&str; 5] = ["berlin-group", "stet", "obie", "fdx", "mapping"];

/// The user the demo's platform acts for.
const USER: &str = "u-81f3";

/// Where the demo platform's users come back to.
const REDIRECT_URI: &str = "http://127.0.0.1/demo-platform/callback";

/// Runs the demo: an in-memory gateway with the bundled sandbox banks, one platform walked
/// through the whole flow at one bank, the same user at a second bank of another standard,
/// both banks' balances printed normalised side by side, a friend paid, then the audit trail.
pub async fn run() -> anyhow::Result<()> {
    let mut demo = Demo::start().await?;
    let (platform, officer) = demo.register_clients().await?;
    let first = demo.consent_at_first_bank(&platform).await?;
    let read = demo.read_accounts_and_balances(&platform, &first).await?;
    demo.second_bank_side_by_side(&platform, &read).await?;
    demo.out_of_purpose(&platform, &first, &read).await?;
    let payment_consent = demo.pay_a_friend(&platform).await?;
    demo.audit_trail(&officer, &[&first.consent_id, &payment_consent])
        .await?;
    demo.notifications().await?;
    demo.connected_apps().await?;
    demo.finish().await
}

/// A bank the demo uses: its id and name.
#[derive(Clone)]
struct DemoBank {
    id: String,
    name: String,
}

/// The running demo: the gateway serving in the background, the two banks it chose, the
/// sandbox banks' shared books, and what it has printed so far.
struct Demo {
    app: Arc<App>,
    base: String,
    first: DemoBank,
    second: DemoBank,
    /// The sandbox banks' shared books, to show the friend's side of the payment.
    ledger: Option<Arc<Ledger>>,
    out: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// What the platform read at the first bank: the accounts, the first one's id, its balances.
struct Read {
    accounts: serde_json::Value,
    account_id: String,
    balances: serde_json::Value,
}

impl Demo {
    /// Starts the gateway on the embedded store with its sandbox banks, and picks the first
    /// banks of two standards.
    async fn start() -> anyhow::Result<Demo> {
        let mut config = embedded_config();
        // A fixed address, for a receiver elsewhere that trusts this gateway's keys.
        if let Ok(listen) = std::env::var(messenger::LISTEN_VAR) {
            config.listen = listen.parse().context(messenger::LISTEN_VAR)?;
            config.public_url = format!("http://{listen}");
        }
        let gateway = Gateway::start(config).await?;
        let app = gateway.app.clone();
        let base = app.config.public_url.clone();
        let banks: Vec<String> = app
            .banks
            .iter()
            .map(|adapter| adapter.bank.id().to_owned())
            .collect();
        let mut chosen = DEMO_PROFILES
            .iter()
            .filter_map(|profile| bank_of(&app, profile));
        let (Some(first), Some(second)) = (chosen.next(), chosen.next()) else {
            bail!("the demo needs banks of two standards in adapters/");
        };
        let ledger = gateway
            .sandboxes
            .first()
            .map(|sandbox| sandbox.ledger.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gateway.serve(async move {
            let _ = stopped.await;
        }));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bankgate demo: gateway at {base} (in-memory store), banks: {}",
            banks.join(", ")
        );
        Ok(Demo {
            app,
            base,
            first,
            second,
            ledger,
            out,
            stop,
            server,
        })
    }

    /// Prints a step's heading.
    fn step(&mut self, title: &str) {
        let _ = writeln!(self.out, "\n== {title}");
    }

    /// Prints a line of a step.
    fn say(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Prints an answer (its status and pretty JSON body); fails with `failure` unless its
    /// status is `expected`.
    fn answered(
        &mut self,
        status: u16,
        body: &serde_json::Value,
        expected: u16,
        failure: &str,
    ) -> anyhow::Result<()> {
        self.say(format_args!(
            "HTTP {status}\n{}",
            serde_json::to_string_pretty(body)?
        ));
        if status != expected {
            bail!("{failure}");
        }
        Ok(())
    }

    /// The profile of bank `id`.
    fn profile_of(&self, id: &str) -> String {
        self.app
            .banks
            .get(id)
            .map(|adapter| adapter.bank.manifest.profile.clone())
            .unwrap_or_default()
    }

    /// Step 1: The operator registers a FAPI 2.0 platform — it signs client assertions with one key
    /// and DPoP proofs with another; the gateway holds only the assertion key's public half —
    /// and a compliance office (which signs in as the console does: with a secret).
    async fn register_clients(&mut self) -> anyhow::Result<(PlatformClient, PlatformClient)> {
        let assertion_key = ClientKey::generate_es256()?;
        let platform = self
            .app
            .registrar
            .register(
                &self.app.policies.current(),
                Registration {
                    client_id: "demo-messenger".into(),
                    name: "Demo Messenger".into(),
                    role: Role::Platform,
                    redirect_uris: vec![REDIRECT_URI.into()],
                    allowed_purposes: vec![
                        "balance-alerts".into(),
                        "fraud-alerts".into(),
                        "p2p-payment".into(),
                        crate::payments::payees::PAYEE_PURPOSE.into(),
                    ],
                    jwks: Some(assertion_key.jwks()),
                    ..Registration::default()
                },
            )
            .await?;
        let officer = self
            .app
            .registrar
            .register(
                &self.app.policies.current(),
                Registration {
                    client_id: "demo-compliance".into(),
                    name: "Demo Compliance Office".into(),
                    role: Role::Compliance,
                    redirect_uris: vec![],
                    allowed_purposes: vec![],
                    token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
                    ..Registration::default()
                },
            )
            .await?;
        self.step("1. Operator registers a platform");
        self.say(format_args!(
            "client_id={} purposes=balance-alerts,fraud-alerts,p2p-payment \
             redirect_uri={REDIRECT_URI} \
             token_endpoint_auth_method=private_key_jwt dpop_bound_access_tokens=true",
            platform.client_id
        ));
        let client = PlatformClient::new(&self.base, &platform.client_id, "", REDIRECT_URI)?
            .with_private_key_jwt(assertion_key)
            .with_dpop(ClientKey::generate_ed25519()?);
        let officer =
            PlatformClient::new(&self.base, &officer.client_id, &officer.client_secret, "")?;
        Ok((client, officer))
    }

    /// Step 2–5: The user's consent at the first bank, hop by hop: the pushed request, the consent
    /// screen, the bank's approval and callback, the code exchanged for tokens.
    async fn consent_at_first_bank(
        &mut self,
        client: &PlatformClient,
    ) -> anyhow::Result<TokenResponse> {
        let detail = account_information(
            &self.first.id,
            "balance-alerts",
            &[Scope::Accounts, Scope::Balances],
            USER,
        );
        let mut trace = FlowTrace::default();
        let pushed = client.push(&detail).await?;
        self.step("2. Platform pushes an authorization request (PAR, PKCE S256, RAR)");
        self.say(format_args!(
            "authorization_details={}",
            serde_json::to_string(&[&detail])?
        ));
        self.say(format_args!("request_uri={}", pushed.request_uri));

        let code = client.approve(&pushed, &mut trace).await?;
        self.step("3. User sees the consent screen and continues to the bank");
        self.say(format_args!(
            "consent screen: {}",
            text_between(&trace.consent_screen, "<h1>", "</h1>")
        ));
        self.say(format_args!(
            "bank authorization: {}",
            strip_query(&trace.bank_authorization_url)
        ));
        self.step("4. Bank approves and redirects back; gateway stores the sealed bank grant");
        self.say(format_args!(
            "callback: {}",
            strip_query(&trace.callback_url)
        ));
        self.say(format_args!(
            "platform redirect: {} (code, state, iss)",
            strip_query(&trace.platform_redirect)
        ));

        let token = client.exchange(&code, &pushed).await?;
        self.step("5. Platform exchanges the code for an access token");
        self.say(format_args!(
            "token_type={} expires_in={}s scope=\"{}\" consent_id={}",
            token.token_type, token.expires_in, token.scope, token.consent_id
        ));
        Ok(token)
    }

    /// Step 6–7: The platform reads the accounts and the first account's balances.
    async fn read_accounts_and_balances(
        &mut self,
        client: &PlatformClient,
        token: &TokenResponse,
    ) -> anyhow::Result<Read> {
        let (status, accounts) = client.get(&token.access_token, "/v1/accounts").await?;
        self.step("6. GET /v1/accounts");
        self.answered(status, &accounts, 200, "accounts request failed")?;
        let account_id = accounts["accounts"][0]["id"]
            .as_str()
            .context("no account returned")?
            .to_owned();
        let (status, balances) = client
            .get(
                &token.access_token,
                &format!("/v1/accounts/{account_id}/balances"),
            )
            .await?;
        self.step(&format!("7. GET /v1/accounts/{account_id}/balances"));
        self.answered(status, &balances, 200, "balances request failed")?;
        Ok(Read {
            accounts,
            account_id,
            balances,
        })
    }

    /// Step 8–9: The same user connects a bank of another standard; both banks' balances side by
    /// side in the one canonical model.
    async fn second_bank_side_by_side(
        &mut self,
        client: &PlatformClient,
        first: &Read,
    ) -> anyhow::Result<()> {
        let DemoBank {
            id: second,
            name: second_name,
        } = self.second.clone();
        let detail = account_information(
            &second,
            "balance-alerts",
            &[Scope::Accounts, Scope::Balances],
            USER,
        );
        let (token, _) = client.connect(&detail).await?;
        self.step(&format!(
            "8. The same user connects a second bank of another standard: {second_name} ({})",
            self.profile_of(&second)
        ));
        self.say(format_args!(
            "consent_id={} scope=\"{}\" (PAR, consent screen, bank approval, token, as above)",
            token.consent_id, token.scope
        ));
        // The second bank's accounts and the first one's balances (each data call counts
        // against the purpose's unattended budget: the first bank's were read above).
        let (status, accounts) = client.get(&token.access_token, "/v1/accounts").await?;
        if status != 200 {
            bail!("accounts request at {second} failed");
        }
        let account = accounts["accounts"][0].clone();
        let account_id = account["id"]
            .as_str()
            .context("no account returned by the second bank")?;
        let (status, balances) = client
            .get(
                &token.access_token,
                &format!("/v1/accounts/{account_id}/balances"),
            )
            .await?;
        if status != 200 {
            bail!("balances request at {second} failed");
        }
        let first_name = self.first.name.clone();
        self.step(&format!(
            "9. Both banks, normalised: {} ({}) and {} ({}) in one canonical model",
            first_name,
            self.profile_of(&self.first.id),
            second_name,
            self.profile_of(&second)
        ));
        self.say(format_args!(
            "{:<16} {:<16} {:<8} {:<30} {:>12} currency",
            "bank", "account", "type", "balance", "amount"
        ));
        for (name, account, balances) in [
            (&first_name, &first.accounts["accounts"][0], &first.balances),
            (&second_name, &account, &balances),
        ] {
            for balance in balances["balances"].as_array().cloned().unwrap_or_default() {
                // An unknown code stays `other`, with the bank's own name for it.
                let kind = match balance["type_original"].as_str() {
                    Some(original) => format!("other ({original})"),
                    None => balance["type"].as_str().unwrap_or("-").to_owned(),
                };
                self.say(format_args!(
                    "{:<16} {:<16} {:<8} {:<30} {:>12} {}",
                    name,
                    account["display_name"].as_str().unwrap_or("-"),
                    account["type"].as_str().unwrap_or("-"),
                    kind,
                    balance["amount"].as_str().unwrap_or("-"),
                    balance["currency"].as_str().unwrap_or("-"),
                ));
            }
        }
        Ok(())
    }

    /// Step 10: Transactions under a balance-alerts consent: refused, the purpose does not cover
    /// them.
    async fn out_of_purpose(
        &mut self,
        client: &PlatformClient,
        token: &TokenResponse,
        read: &Read,
    ) -> anyhow::Result<()> {
        let (status, denied) = client
            .get(
                &token.access_token,
                &format!("/v1/accounts/{}/transactions", read.account_id),
            )
            .await?;
        self.step("10. Out of purpose: GET …/transactions with a balance-alerts consent");
        self.answered(
            status,
            &denied,
            403,
            "the out-of-purpose request was not denied",
        )?;
        Ok(())
    }

    /// Step 12: The compliance officer reads the audit trail of `consents`.
    async fn audit_trail(
        &mut self,
        officer: &PlatformClient,
        consents: &[&str],
    ) -> anyhow::Result<()> {
        let token = officer.client_credentials().await?;
        let mut events = Vec::new();
        let mut first_status = None;
        for consent in consents {
            let (status, trail) = officer
                .get(&token, &format!("/v1/audit/events?consent={consent}"))
                .await?;
            first_status.get_or_insert(status);
            events.extend(trail["events"].as_array().cloned().unwrap_or_default());
        }
        let status = first_status.unwrap_or_default();
        self.step(
            "12. Compliance officer reads the audit trail of the first consent and of the payment",
        );
        self.say(format_args!("HTTP {status}"));
        for event in &events {
            self.say(format_args!(
                "#{:<3} {:<19} {:<6} {:<16} {:<22} policy={} fields=[{}] {}",
                event["position"],
                event["action"].as_str().unwrap_or(""),
                event["decision"].as_str().unwrap_or(""),
                event["purpose"].as_str().unwrap_or(""),
                joined(&event["categories"]),
                event["policy_hash"]
                    .as_str()
                    .map_or("-", |hash| &hash[..hash.len().min(19)]),
                joined(&event["fields"]),
                event["reason"].as_str().unwrap_or(""),
            ));
        }
        if status != 200 || events.is_empty() {
            bail!("the audit trail could not be read");
        }
        Ok(())
    }

    /// Prints the story and stops the gateway.
    async fn finish(mut self) -> anyhow::Result<()> {
        self.say(format_args!(
            "\nDemo complete: every decision above was committed to the audit chain before its \
             response left."
        ));
        print!("{}", self.out);
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}

/// The first bank of `profile` the gateway runs.
fn bank_of(app: &App, profile: &str) -> Option<DemoBank> {
    app.banks
        .iter()
        .find(|adapter| adapter.bank.manifest.profile == profile)
        .map(|adapter| DemoBank {
            id: adapter.bank.id().to_owned(),
            name: adapter.bank.manifest.name.clone(),
        })
}
fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn text_between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    text.split_once(start)
        .and_then(|(_, rest)| rest.split_once(end))
        .map_or("", |(inner, _)| inner)
}

/// The strings of a JSON array, comma-separated (empty for anything else).
fn joined(list: &serde_json::Value) -> String {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
