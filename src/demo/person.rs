//! The demo's last step: the person's own door. The first bank's customer (the one its sandbox
//! approves as) signs in at her bank (bankgate → the bank's authorization endpoint with `openid`
//! → the callback, which sets the session cookie) and sees every app she connected there
//! through bankgate.

use anyhow::{Context, bail};

use super::{Demo, text_between};

impl Demo {
    /// Step 15: the person signs in through the first bank and reads her connected-apps page.
    pub(super) async fn connected_apps(&mut self) -> anyhow::Result<()> {
        let bank = self.first.clone();
        if !crate::broker::sign_in::offered(&self.app.banks, &bank.id) {
            return Ok(());
        }
        self.step(&format!(
            "15. The bank's customer signs in at {} and sees every app she connected through bankgate",
            bank.name
        ));
        // The person's browser: it follows no redirect by itself, so each hop shows.
        let browser = crate::crypto::http_client_builder().build()?;
        let location = |response: &reqwest::Response| -> anyhow::Result<String> {
            Ok(response
                .headers()
                .get(reqwest::header::LOCATION)
                .context("a redirect")?
                .to_str()?
                .to_owned())
        };
        let page_url = format!("{}/me/{}", self.base, bank.id);
        let to_bank = browser.get(&page_url).send().await?;
        let at_bank = location(&to_bank)?;
        self.say(format_args!(
            "GET /me/{} → {} (scope openid, PKCE)",
            bank.id,
            super::strip_query(&at_bank)
        ));
        let from_bank = browser.get(&at_bank).send().await?;
        let back = browser.get(location(&from_bank)?).send().await?;
        let cookie = back
            .headers()
            .get(reqwest::header::SET_COOKIE)
            .context("a session cookie")?
            .to_str()?
            .to_owned();
        let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
        self.say(format_args!(
            "back at /oauth/callback: session cookie ({})",
            attributes.join(", ")
        ));
        let session = cookie.split(';').next().unwrap_or_default().to_owned();
        let page = browser
            .get(&page_url)
            .header(reqwest::header::COOKIE, session)
            .send()
            .await?;
        if !page.status().is_success() {
            bail!("the connected-apps page answered {}", page.status());
        }
        let html = page.text().await?;
        self.say(format_args!(
            "{}",
            text_between(&html, "<h1 id=\"heading\">", "</h1>")
        ));
        for card in html.split("<section class=\"card\"").skip(1) {
            let purpose = text_between(card, "<dd class=\"purpose\">", "<br>");
            self.say(format_args!(
                "- {}: {} — {}; {}; last access {}",
                text_between(card, "class=\"platform\">", "</h2>"),
                purpose,
                text_between(card, "<dd class=\"status\">", "</dd>"),
                text_between(card, "<summary>", "</summary>"),
                text_between(card, "<dd class=\"last-access\">", "</dd>"),
            ));
        }
        self.say(format_args!(
            "(each card has a button to withdraw the app's access; the view itself is audited)"
        ));
        Ok(())
    }
}
