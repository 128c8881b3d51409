//! The demo's payment step: a friend paid by message by her handle (`@alice`), both balances
//! before and after, the payment not made twice when the platform repeats its request.

use anyhow::{Context, bail};
use bankgate_sandbox::ledger::Ledger;

use super::{Demo, DemoBank, FlowTrace, PlatformClient, USER, account_information, bank_of};
use super::{strip_query, text_between};
use crate::model::Scope;

impl Demo {
    /// Step 11: Pay by message: the friend, who banks at the Berlin Group bank, connects her
    /// account as a payee and the platform registers `@alice` for her; the user, at the STET
    /// bank, pays `@alice` €12.50 and sees only her name as her bank has it and her account
    /// masked; both balances, the statuses. Returns the payment's consent id (for the audit
    /// trail).
    pub(super) async fn pay_a_friend(&mut self, client: &PlatformClient) -> anyhow::Result<String> {
        let (
            Some(DemoBank {
                id: payer_bank,
                name: payer_name,
            }),
            Some(DemoBank {
                id: friend_bank,
                name: friend_bank_name,
            }),
        ) = (
            bank_of(&self.app, "stet"),
            bank_of(&self.app, "berlin-group"),
        )
        else {
            bail!("the payment demo needs a STET and a Berlin Group bank");
        };
        // The friend's savings at the Berlin Group bank. (The sandbox banks approve every
        // consent as their customer Alice Schmidt, so the friend is her savings account.)
        let friend_iban = "DE65999900000012345602";
        self.step(&format!(
            "11. Pay by message: the user at {payer_name} pays @alice, a friend at \
             {friend_bank_name}, €12.50"
        ));
        let handle = self
            .register_handle(client, &friend_bank, friend_iban)
            .await?;
        let balances_consent = account_information(
            &payer_bank,
            "balance-alerts",
            &[Scope::Accounts, Scope::Balances],
            USER,
        );
        let (payer_view, _) = client.connect(&balances_consent).await?;
        let payer_before = available(client, &payer_view.access_token, "Main Account").await?;
        let friend_before = friend_balance(self.ledger.as_deref(), friend_iban);

        // The platform names the payee by her handle: no account number, no name.
        let request = serde_json::json!({
            "type": crate::payments::PAYMENT_INITIATION,
            "bank": payer_bank,
            "purpose": "p2p-payment",
            "instructed_amount": {"currency": "EUR", "amount": "12.50"},
            "creditor": {"handle": handle},
            "remittance": "pizza",
            "instant": true,
            "user_ref": USER,
        });
        let pushed = client.push_with(&request, &[]).await?;
        let mut trace = FlowTrace::default();
        let code = client.approve(&pushed, &mut trace).await?;
        let token = client.exchange_payment(&code, &pushed).await?;
        let access_token = token["access_token"].as_str().context("no access token")?;
        let consent_id = token["consent_id"].as_str().unwrap_or_default().to_owned();
        self.say(format_args!(
            "authorization_details={}",
            serde_json::to_string(&[&request])?
        ));
        self.say(format_args!(
            "consent screen: {} | payee {} | account shown as {}",
            text_between(&trace.consent_screen, "<h1 id=\"heading\">", "</h1>"),
            text_between(&trace.consent_screen, "<dd id=\"payee\">", "</dd>"),
            text_between(&trace.consent_screen, "<dd id=\"payee-account\">", "</dd>"),
        ));
        self.say(format_args!(
            "bank authorization (SCA): {}",
            strip_query(&trace.bank_authorization_url)
        ));
        self.say(format_args!(
            "token scope=\"{}\" authorization_details[0]: creditor={} creditor_name={} \
             creditor_account={}",
            token["scope"].as_str().unwrap_or_default(),
            token["authorization_details"][0]["creditor"],
            token["authorization_details"][0]["creditor_name"],
            token["authorization_details"][0]["creditor_account"],
        ));
        // The platform submits under an idempotency key; a repeat of the same request is answered
        // with the same payment.
        let body = serde_json::json!({"instructed_amount": {"currency": "EUR", "amount": "12.50"}});
        let submit = || {
            client.post_json(
                access_token,
                "/v1/payments",
                &body,
                &[("idempotency-key", "demo-payment-1")],
            )
        };
        let submitted = submit().await?;
        let paid = submitted.json();
        self.say(format_args!(
            "POST /v1/payments (Idempotency-Key: demo-payment-1) → HTTP {}\n{}",
            submitted.status,
            serde_json::to_string_pretty(&paid)?
        ));
        if submitted.status != 201 {
            bail!("the payment was not submitted");
        }
        let retried = submit().await?;
        self.say(format_args!(
            "the same request again → HTTP {} with the same payment {} (not paid twice)",
            retried.status,
            retried.json()["id"]
        ));
        let payer_after = available(client, &payer_view.access_token, "Main Account").await?;
        let friend_after = friend_balance(self.ledger.as_deref(), friend_iban);
        self.say(format_args!(
            "payer  at {payer_name:<16} Main Account  {payer_before} → {payer_after}"
        ));
        self.say(format_args!(
            "friend at {friend_bank_name:<16} {}  interim_booked {friend_before} → {friend_after}",
            crate::model::mask_iban(friend_iban)
        ));
        let id = paid["id"].as_str().unwrap_or_default();
        let (_, shown) = client
            .get(access_token, &format!("/v1/payments/{id}"))
            .await?;
        self.say(format_args!(
            "GET /v1/payments/{id} → status {} (bank code {})",
            shown["status"], shown["bank_status"]["code"]
        ));
        Ok(consent_id)
    }

    /// The friend connects her account at `bank` as a payee (`p2p-payments-payee-check`) and
    /// the platform registers `@alice` for the account `iban`: the handle.
    async fn register_handle(
        &mut self,
        client: &PlatformClient,
        bank: &str,
        iban: &str,
    ) -> anyhow::Result<String> {
        let payee_consent = account_information(
            bank,
            crate::payments::payees::PAYEE_PURPOSE,
            &[Scope::Accounts, Scope::Identity],
            "friend-alice",
        );
        let (payee, _) = client.connect(&payee_consent).await?;
        let (_, accounts) = client.get(&payee.access_token, "/v1/accounts").await?;
        let masked = crate::model::mask_iban(iban);
        let account_id = accounts["accounts"]
            .as_array()
            .and_then(|accounts| {
                accounts
                    .iter()
                    .find(|account| account["iban_masked"] == masked.as_str())
            })
            .and_then(|account| account["id"].as_str())
            .with_context(|| format!("no account {masked} at {bank}"))?
            .to_owned();
        let handle = "@alice";
        let registered = client
            .put_json(
                &payee.access_token,
                &format!("/v1/payees/{handle}"),
                &serde_json::json!({ "account_id": account_id }),
            )
            .await?;
        if registered.status != 201 {
            bail!("the handle was not registered: HTTP {}", registered.status);
        }
        self.say(format_args!(
            "the friend connects her account at {bank} as a payee; PUT /v1/payees/{handle} → \
             HTTP {} {}",
            registered.status,
            registered.json()
        ));
        Ok(handle.to_owned())
    }
}

/// The available (or else expected) balance of one account, by account name.
async fn available(
    client: &PlatformClient,
    token: &str,
    account_name: &str,
) -> anyhow::Result<String> {
    let (_, accounts) = client.get(token, "/v1/accounts").await?;
    let account = accounts["accounts"]
        .as_array()
        .and_then(|accounts| {
            accounts
                .iter()
                .find(|account| account["display_name"] == account_name)
        })
        .with_context(|| format!("no account {account_name}"))?;
    let id = account["id"].as_str().unwrap_or_default();
    let (_, balances) = client
        .get(token, &format!("/v1/accounts/{id}/balances"))
        .await?;
    let balance = ["interim_available", "expected"]
        .iter()
        .find_map(|kind| {
            balances["balances"]
                .as_array()?
                .iter()
                .find(|balance| balance["type"] == *kind)
        })
        .context("no available or expected balance")?;
    Ok(format!(
        "{} {} {}",
        balance["type"].as_str().unwrap_or("-"),
        balance["amount"].as_str().unwrap_or("-"),
        balance["currency"].as_str().unwrap_or("-")
    ))
}

/// The friend's balance in the sandbox banks' books (`interimBooked`, which moves when the
/// transfer settles).
fn friend_balance(ledger: Option<&Ledger>, iban: &str) -> String {
    let (Some(ledger), Some((_, account))) =
        (ledger, bankgate_sandbox::ledger::account_by_iban(iban))
    else {
        return "-".into();
    };
    ledger
        .balances(account)
        .iter()
        .find(|balance| format!("{:?}", balance.kind).contains("InterimBooked"))
        .map_or_else(
            || "-".into(),
            |balance| format!("{} {}", balance.money.amount, balance.money.currency),
        )
}
