//! The person's connected-apps page over HTTP (the browser's part is `tests/browser`): signing
//! in through the bank (bankgate → the bank's authorization endpoint with `openid` → the
//! callback, which sets a `SameSite=Strict`, `HttpOnly` cookie scoped to `/me`), the page
//! listing the person's consents at that bank from two platforms, a revocation (the platform's
//! next request refused, its `consent.revoked` webhook with the person's reason, audited once),
//! and what is refused: a revocation without a session, with a forged form, of someone else's
//! consent; a forged cookie; sign-in starts beyond the client address's limit.

use bankgate::demo::account_information;
use bankgate::model::Scope;
use bankgate::subject::connected::{REVOKED_REASON, Session};
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use super::fapi::{receiver, verify_delivery};
use super::support::{Options, StoreKind, TestGateway};

on_both_stores!(
    a_person_signs_in_through_the_bank_and_withdraws_an_app,
    a_subject_report_finds_the_person_by_their_bank,
    sign_in_starts_beyond_the_limit_of_an_address_are_refused
);

const PURPOSE: &str = "balance-alerts";
const SCOPES: &[Scope] = &[Scope::Accounts, Scope::Balances];
const BANK: &str = "obie-bank";

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("no Location in {response:?}"))
        .to_owned()
}

/// Signs in at `BANK` as the sandbox's default customer, starting from `start`: the session
/// cookie (`name=value`) and the `Set-Cookie` line it came in.
async fn sign_in(gateway: &TestGateway, start: &str) -> (String, String) {
    let http = browser();
    let to_bank = http.get(start).send().await.unwrap();
    assert_eq!(to_bank.status(), 303, "{to_bank:?}");
    let bank_url = url::Url::parse(&location(&to_bank)).unwrap();
    let scope: String = bank_url
        .query_pairs()
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(scope, "openid", "only who the person is: {bank_url}");
    assert!(
        bank_url
            .query_pairs()
            .any(|(name, _)| name == "code_challenge"),
        "PKCE: {bank_url}"
    );
    let at_bank = http.get(bank_url).send().await.unwrap();
    let callback = location(&at_bank);
    assert!(
        callback.starts_with(&format!("{}/oauth/callback?", gateway.base)),
        "{callback}"
    );
    let back = http.get(&callback).send().await.unwrap();
    assert_eq!(back.status(), 200);
    let set_cookie = back
        .headers()
        .get(SET_COOKIE)
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/me", "Max-Age=900"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let page = back.text().await.unwrap();
    assert!(page.contains("http-equiv=\"refresh\""), "{page}");
    // The state works once: the same answer again is refused.
    let again = http.get(&callback).send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.headers().get(SET_COOKIE).is_none());
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    (cookie, set_cookie)
}

/// The page at `path` with `cookie`: status, CSP and body.
async fn page(gateway: &TestGateway, path: &str, cookie: &str) -> (u16, String, String) {
    let response = browser()
        .get(format!("{}{path}", gateway.base))
        .header(COOKIE, cookie)
        .header("accept-language", "en")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let csp = response
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, csp, response.text().await.unwrap())
}

/// The form token the page holds for `consent_id`.
fn form_token(page: &str, consent_id: &str) -> String {
    let marker = format!(
        "name=\"consent_id\" value=\"{consent_id}\"><input type=\"hidden\" name=\"form_token\" value=\""
    );
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no form for {consent_id}: {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

async fn post_revoke(
    gateway: &TestGateway,
    cookie: Option<&str>,
    consent_id: &str,
    token: &str,
) -> reqwest::Response {
    let mut request = browser()
        .post(format!("{}/me/{BANK}/revoke", gateway.base))
        .form(&[("consent_id", consent_id), ("form_token", token)]);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    request.send().await.unwrap()
}

async fn a_person_signs_in_through_the_bank_and_withdraws_an_app(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let hooks = receiver(Vec::new()).await;
    let chat = gateway.fapi_platform("chat-a", Some(&hooks.url)).await;
    let social = gateway.another_platform("social-b", &[PURPOSE]).await;

    // One person (the sandbox's alice), two platforms, at the bank she signs in with; and a
    // consent at another bank, which her page there does not list.
    let (at_chat, _) = chat
        .connect(&account_information(BANK, PURPOSE, SCOPES, "chat-u1"))
        .await
        .expect("consent flow");
    let (at_social, _) = social
        .connect(&account_information(BANK, PURPOSE, SCOPES, "social-u9"))
        .await
        .expect("consent flow");
    let (elsewhere, _) = social
        .connect(&account_information(
            "demo-bank",
            PURPOSE,
            SCOPES,
            "social-u9",
        ))
        .await
        .expect("consent flow at the Berlin Group bank");
    let (status, _) = chat
        .get(&at_chat.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Banks people may sign in with: the OpenID providers only.
    let (status, csp, banks) = page(&gateway, "/me", "").await;
    assert_eq!(status, 200);
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(banks.contains("href=\"/me/obie-bank\""), "{banks}");
    assert!(banks.contains("href=\"/me/fdx-bank\""), "{banks}");
    assert!(banks.contains("href=\"/me/demo-bank\""), "{banks}");
    assert!(!banks.contains("/me/nova-bank"), "{banks}");
    let (status, _, _) = page(&gateway, "/me/nova-bank", "").await;
    assert_eq!(status, 404, "the proprietary bank offers no sign-in");

    // The platform's view of its consent says where its user can manage it…
    let management = chat.client_credentials().await.unwrap();
    let (status, consent) = chat
        .get(&management, &format!("/v1/consents/{}", at_chat.consent_id))
        .await
        .unwrap();
    assert_eq!(status, 200, "{consent}");
    let start = consent["manage_url"].as_str().unwrap().to_owned();
    assert_eq!(
        start,
        format!("{}/me/{BANK}?consent={}", gateway.base, at_chat.consent_id)
    );
    // …and there the person signs in through the bank, the page opened on that consent.
    let (cookie, _) = sign_in(&gateway, &start).await;
    let (status, csp, listed) = page(&gateway, &format!("/me/{BANK}"), &cookie).await;
    assert_eq!(status, 200, "{listed}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(!listed.contains("<script"), "no script");
    assert!(
        listed.contains("Your connected apps at Sandbox Bank UK"),
        "{listed}"
    );
    for (consent, platform) in [(&at_chat, "chat-a"), (&at_social, "social-b")] {
        assert!(
            listed.contains(&format!("data-consent=\"{}\"", consent.consent_id)),
            "{listed}"
        );
        assert!(
            listed.contains(&format!("Withdraw {platform}&#39;s access")),
            "{listed}"
        );
    }
    assert!(
        !listed.contains(&elsewhere.consent_id),
        "another bank's consent"
    );
    assert!(listed.contains("Balance alerts"), "the purpose in words");
    assert!(
        listed.contains("Accesses in the last 90 days: 1"),
        "chat-a's one read: {listed}"
    );

    // Showing the page was put on the record first: by the person, at the bank, two consents,
    // naming nobody.
    let views: Vec<bankgate::audit::Record> = gateway
        .app
        .auditor
        .events(&bankgate::audit::Filter {
            action: Some(bankgate::audit::Action::AuditQueried),
            ..bankgate::audit::Filter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|record| {
            record
                .event
                .reason
                .as_deref()
                .is_some_and(|reason| reason.contains("connected-apps"))
        })
        .collect();
    assert_eq!(views.len(), 1);
    let view = &views[0].event;
    assert_eq!(view.actor, "person");
    assert_eq!(view.bank.as_deref(), Some(BANK));
    assert_eq!(view.n_records, 2);
    assert!(view.user_ref.is_none() && view.consent.is_none());

    // A forged cookie is no session: off to the bank.
    let forged = format!("{cookie}x");
    let (status, _, _) = page(&gateway, &format!("/me/{BANK}"), &forged).await;
    assert_eq!(status, 303);

    // What is refused, and changes nothing.
    let token = form_token(&listed, &at_chat.consent_id);
    let refused = post_revoke(&gateway, None, &at_chat.consent_id, &token).await;
    assert_eq!(refused.status(), 401, "no session");
    let refused = post_revoke(&gateway, Some(&cookie), &at_chat.consent_id, "forged").await;
    assert_eq!(refused.status(), 403, "a forged form");
    let other_token = form_token(&listed, &at_social.consent_id);
    let refused = post_revoke(&gateway, Some(&cookie), &at_chat.consent_id, &other_token).await;
    assert_eq!(refused.status(), 403, "another consent's form");
    // Someone else's consent (here: not one she gave at this bank), with a form token made
    // for it under her own session.
    let session_token = cookie.split_once('=').unwrap().1;
    let session = Session::open(&gateway.app.sealer, session_token, chrono::Utc::now()).unwrap();
    let not_hers = session.form_token(&gateway.app.sealer, &elsewhere.consent_id);
    let refused = post_revoke(&gateway, Some(&cookie), &elsewhere.consent_id, &not_hers).await;
    assert_eq!(refused.status(), 404);
    let (status, _) = social
        .get(&elsewhere.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "untouched");
    let (status, _) = chat
        .get(&at_chat.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200, "untouched");

    // She withdraws chat-a's access.
    let done = post_revoke(&gateway, Some(&cookie), &at_chat.consent_id, &token).await;
    assert_eq!(done.status(), 303);
    let back = location(&done);
    assert_eq!(back, format!("/me/{BANK}?revoked={}", at_chat.consent_id));
    let (status, _, after) = page(&gateway, &back, &cookie).await;
    assert_eq!(status, 200);
    assert!(
        after.contains("chat-a no longer has access to your data at Sandbox Bank UK"),
        "{after}"
    );
    assert!(after.contains("Withdrawn"), "{after}");
    assert!(
        !after.contains(&format!("value=\"{}\"", at_chat.consent_id)),
        "no form for a withdrawn consent"
    );
    // Twice is once.
    let again = post_revoke(&gateway, Some(&cookie), &at_chat.consent_id, &token).await;
    assert_eq!(again.status(), 303);

    // chat-a's next request is refused; social-b's consent lives on.
    let (status, body) = chat
        .get(&at_chat.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert!(matches!(status, 401 | 403), "{status} {body}");
    let kind = body["type"].as_str().unwrap_or_default();
    assert!(
        kind.ends_with("/token-revoked") || kind.ends_with("/consent-revoked"),
        "{body}"
    );
    let (status, _) = social
        .get(&at_social.access_token, "/v1/accounts")
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Audited once, by the person, with the reason; the platform is told by webhook.
    let revoked: Vec<Value> = gateway
        .audit_of(&at_chat.consent_id)
        .await
        .into_iter()
        .filter(|event| event["action"] == "consent_revoked")
        .collect();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["actor"], "person");
    assert_eq!(revoked[0]["reason"], REVOKED_REASON);
    let report = gateway
        .app
        .maintenance()
        .unwrap()
        .run_once(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(report.deliveries.delivered, 1);
    let received = hooks.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let claims = verify_delivery(&gateway, &received[0].1, "chat-a").await;
    let event = &claims["events"]["https://bankgate.dev/events/consent.revoked"];
    assert_eq!(event["consent_id"], at_chat.consent_id.as_str());
    assert_eq!(event["reason"], REVOKED_REASON);

    // Signing out ends the session.
    let out = browser()
        .post(format!("{}/me/sign-out", gateway.base))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let cleared = out.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

/// Subject access by the bank's identifier for the person: every platform user she approved
/// consents as at that bank, each with its whole report; the identifier itself is kept out of
/// the answer and the audit log.
async fn a_subject_report_finds_the_person_by_their_bank(kind: StoreKind) {
    let gateway = TestGateway::start(kind).await;
    let chat = gateway.another_platform("chat-a", &[PURPOSE]).await;
    let social = gateway.another_platform("social-b", &[PURPOSE]).await;
    let mut consents = Vec::new();
    for (platform, user_ref) in [(&chat, "chat-u1"), (&social, "social-u9")] {
        let (token, _) = platform
            .connect(&account_information(BANK, PURPOSE, SCOPES, user_ref))
            .await
            .expect("consent flow");
        consents.push(token.consent_id);
    }
    // chat-u1 also has a consent at the Berlin Group bank: it is chat-a's user's, so in.
    let (elsewhere, _) = chat
        .connect(&account_information(
            "demo-bank",
            PURPOSE,
            SCOPES,
            "chat-u1",
        ))
        .await
        .expect("consent flow");
    // Another user of chat-a: not in.
    let (other, _) = chat
        .connect(&account_information(BANK, PURPOSE, SCOPES, "chat-u2"))
        .await
        .expect("consent flow");

    let compliance = gateway.compliance.client_credentials().await.unwrap();
    // The sandbox banks approve as their default customer, `alice` (her `sub`).
    let path = format!("/v1/audit/subject?bank={BANK}&bank_person=alice");
    let (status, report) = gateway.compliance.get(&compliance, &path).await.unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["bank"], BANK);
    let digest = report["bank_person"].as_str().unwrap();
    assert!(digest.starts_with("bp_"), "{digest}");
    let users: Vec<(String, String)> = report["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|each| {
            (
                each["subject"]["platform"].as_str().unwrap().to_owned(),
                each["subject"]["user_ref"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // chat-u2 was approved by the same sandbox customer too: the bank says it is her.
    assert_eq!(
        users,
        [
            ("chat-a".to_owned(), "chat-u1".to_owned()),
            ("chat-a".to_owned(), "chat-u2".to_owned()),
            ("social-b".to_owned(), "social-u9".to_owned()),
        ]
    );
    let text = report.to_string();
    for consent in consents
        .iter()
        .chain([&elsewhere.consent_id, &other.consent_id])
    {
        assert!(text.contains(consent.as_str()), "{consent} in {text}");
    }
    assert!(
        !text.contains("alice"),
        "the bank's identifier is not echoed"
    );

    // Someone the bank knows nothing about here: an empty report, audited by bank only.
    let path = format!("/v1/audit/subject?bank={BANK}&bank_person=nobody");
    let (status, empty) = gateway.compliance.get(&compliance, &path).await.unwrap();
    assert_eq!(status, 200, "{empty}");
    assert_eq!(empty["reports"], serde_json::json!([]));

    // Both ways at once, or half of one, is refused.
    for bad in [
        format!("/v1/audit/subject?bank={BANK}&bank_person=alice&platform=chat-a&user_ref=chat-u1"),
        format!("/v1/audit/subject?bank={BANK}"),
        "/v1/audit/subject?platform=chat-a".to_owned(),
    ] {
        let (status, body) = gateway.compliance.get(&compliance, &bad).await.unwrap();
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // The printable page.
    let html = reqwest::Client::new()
        .get(format!(
            "{}/v1/audit/subject?bank={BANK}&bank_person=alice&format=html",
            gateway.base
        ))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(html.status(), 200);
    let page = html.text().await.unwrap();
    assert!(page.contains("<h2>As chat-u1 on chat-a</h2>"), "{page}");
    assert!(
        !page.contains("alice") && !page.contains("<script"),
        "{page}"
    );

    // Audited: each platform user's report under their pseudonym; the empty one by bank only.
    let events = gateway
        .app
        .auditor
        .events(&bankgate::audit::Filter {
            action: Some(bankgate::audit::Action::AuditQueried),
            ..bankgate::audit::Filter::default()
        })
        .await
        .unwrap();
    let reasons: Vec<String> = events
        .iter()
        .filter_map(|record| record.event.reason.clone())
        .filter(|reason| reason.contains("subject-report"))
        .collect();
    assert_eq!(reasons.len(), 3 + 1 + 3, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|reason| !reason.contains("alice") && !reason.contains(digest))
    );
}

/// A start without a session from `from` (a loopback address the request is sent from), in
/// `lang`.
async fn start_from(gateway: &TestGateway, from: &str, lang: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address(Some(from.parse().unwrap()))
        .build()
        .unwrap()
        .get(format!("{}/me/{BANK}?consent=c-1", gateway.base))
        .header("accept-language", lang)
        .send()
        .await
        .unwrap()
}

/// The pending bank authorizations the store holds (each start stores one; a sign-in's
/// callback takes its own): what a purge past their expiry deletes.
async fn pending_authorizations(gateway: &TestGateway) -> u64 {
    use bankgate::lifecycle::retention::PERIODS;
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let purged = gateway
        .app
        .store
        .purge_operational(&PERIODS.cutoffs(later))
        .await
        .unwrap();
    purged.bank_authorizations
}

/// Anyone may start a sign-in, so one client address may start only
/// `sign_in_starts_per_minute`: beyond it, the error page in the person's language with 429
/// and `Retry-After`, nothing stored; another address has its own count, and a signed-in
/// person's page views are not counted.
async fn sign_in_starts_beyond_the_limit_of_an_address_are_refused(kind: StoreKind) {
    const LIMIT: u32 = 2;
    let gateway = TestGateway::start_with(
        kind,
        Options {
            sign_in_starts_per_minute: Some(LIMIT),
            ..Options::default()
        },
    )
    .await;
    // Start 1 of 127.0.0.1: a whole sign-in (its pending authorization taken at the callback).
    let (cookie, _) = sign_in(&gateway, &format!("{}/me/{BANK}", gateway.base)).await;
    // Start 2: to the bank, its pending authorization stored.
    let second = start_from(&gateway, "127.0.0.1", "en").await;
    assert_eq!(second.status(), 303, "{second:?}");

    // Beyond the limit: the page, in English or French, and when to come back.
    for (lang, words) in [
        ("en", "Too many sign-ins were started from your address"),
        (
            "fr-FR,fr;q=0.9",
            "Trop de connexions ont été commencées depuis votre adresse",
        ),
    ] {
        let refused = start_from(&gateway, "127.0.0.1", lang).await;
        assert_eq!(refused.status(), 429, "{refused:?}");
        let headers = refused.headers().clone();
        let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(
            (1..=60 / u64::from(LIMIT)).contains(&retry_after),
            "{retry_after}"
        );
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{headers:?}"
        );
        assert!(headers.contains_key(CONTENT_SECURITY_POLICY), "{headers:?}");
        assert!(headers.get(LOCATION).is_none());
        let body = refused.text().await.unwrap();
        assert!(body.contains(words), "{body}");
        assert!(body.contains(&format!("{retry_after} ")), "{body}");
    }
    // A signed-in person's page views are not starts.
    for _ in 0..=LIMIT {
        let (status, _, listed) = page(&gateway, &format!("/me/{BANK}"), &cookie).await;
        assert_eq!(status, 200, "{listed}");
        assert!(
            listed.contains("Your connected apps at Sandbox Bank UK"),
            "{listed}"
        );
    }
    // The peer address is what counts: another one starts.
    let elsewhere = start_from(&gateway, "127.0.0.2", "en").await;
    assert_eq!(elsewhere.status(), 303, "{elsewhere:?}");
    let refused = start_from(&gateway, "127.0.0.1", "en").await;
    assert_eq!(refused.status(), 429, "still over its limit");

    // Stored: start 2's and 127.0.0.2's; none for a refused start.
    assert_eq!(pending_authorizations(&gateway).await, 2);
}
