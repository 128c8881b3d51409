//! The consent screen and the user-facing error page: server-rendered HTML, no script, no
//! external resource, in English or French (chosen by `Accept-Language`).
//!
//! Accessibility: the page has a language (`lang`, and `lang="en"` on the purpose text when the
//! page is in French and the policy file has no French text for it), landmarks (`main`), one
//! `h1`, the facts as a description list, native buttons in a plain `form` (keyboard and screen
//! readers work without JavaScript), a visible focus ring, and colours above 4.5:1 contrast.

use chrono::NaiveDate;

pub(super) use super::super::page::{Lang, error_page};
use super::super::page::{STYLE, category};
use crate::model::{Scope, escape_html as escape};
use crate::payments::verification::Outcome;

/// Everything the consent screen shows.
pub(super) struct Screen<'a> {
    pub lang: Lang,
    pub platform: &'a str,
    pub bank: &'a str,
    /// The purpose's title and plain-language description (from its policy).
    pub title: &'a str,
    pub description: &'a str,
    /// The language `title` and `description` are in: the page's when the policy translates
    /// them (`[text.<lang>]`), English otherwise.
    pub text_lang: Lang,
    pub scopes: &'a [Scope],
    pub days: u32,
    pub until: NaiveDate,
    pub history_days: u32,
    pub retention_days: Option<u32>,
    pub onward_sharing: Option<bool>,
    pub consent_id: &'a str,
    /// The key of a pending extension: the screen asks to extend an authorised consent.
    pub extension: Option<&'a str>,
    pub screen_token: &'a str,
    /// The payment a payment consent asks the user to make (instead of data to share).
    pub payment: Option<&'a PaymentShown>,
}

/// What the consent screen shows of a payment: never the payee's whole account number.
pub(super) struct PaymentShown {
    /// The amount exactly as requested (`12.50`).
    pub amount: String,
    /// ISO 4217 code.
    pub currency: String,
    pub payee: String,
    /// The payee's handle on the platform, when the payer named her by it (her name is then
    /// the one on the account, as her bank has it).
    pub handle: Option<String>,
    /// What the payee's bank said of the name the payer typed (verification of payee).
    pub verification: Option<Outcome>,
    /// `FR76 •••• 1234`.
    pub account: String,
    pub remittance: Option<String>,
    pub instant: bool,
}

impl PaymentShown {
    /// A payee's IBAN as the screen shows it: country and check digits, then the last four.
    pub(super) fn masked(iban: &str) -> String {
        let compact: Vec<char> = iban.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.len() <= 8 {
            return "••••".to_owned();
        }
        let head: String = compact[..4].iter().collect();
        let tail: String = compact[compact.len() - 4..].iter().collect();
        format!("{head} •••• {tail}")
    }

    /// The amount with its currency, as people write it in the page's language: `12.50 EUR`,
    /// `12,50 EUR`.
    fn amount_text(&self, lang: Lang) -> String {
        match lang {
            Lang::En => format!("{} {}", self.amount, self.currency),
            Lang::Fr => format!("{} {}", self.amount.replace('.', ","), self.currency),
        }
    }
}

/// The rows and heading of a payment's screen.
fn payment_rows(
    lang: Lang,
    platform: &str,
    bank: &str,
    payment: &PaymentShown,
) -> (String, String, String) {
    let e = escape;
    let t = |en: String, fr: String| if lang == Lang::En { en } else { fr };
    let amount = e(&payment.amount_text(lang));
    let heading = t(
        format!("{platform} asks to pay {amount} from your account at {bank}"),
        format!("{platform} demande à payer {amount} depuis votre compte chez {bank}"),
    );
    let title = t(
        "Confirm a payment?".into(),
        "Confirmer un paiement ?".into(),
    );
    let payee = match &payment.handle {
        Some(handle) => t(
            format!(
                "{} ({}, name given by their bank)",
                e(&payment.payee),
                e(handle)
            ),
            format!(
                "{} ({}, nom donné par sa banque)",
                e(&payment.payee),
                e(handle)
            ),
        ),
        None => e(&payment.payee),
    };
    let mut rows = vec![
        (t("Amount".into(), "Montant".into()), "amount", amount),
        (t("Payee".into(), "Bénéficiaire".into()), "payee", payee),
        (
            t("Payee's account".into(), "Compte du bénéficiaire".into()),
            "payee-account",
            e(&payment.account),
        ),
    ];
    if let Some(outcome) = &payment.verification {
        let said = match outcome {
            Outcome::Match => t(
                "Matches the name on the account".into(),
                "Correspond au nom du titulaire du compte".into(),
            ),
            Outcome::CloseMatch { name_on_account } => t(
                format!(
                    "Close to the name on the account, which is {}: check it is the person you \
                     mean to pay",
                    e(name_on_account)
                ),
                format!(
                    "Proche du nom du titulaire du compte, qui est {} : vérifiez qu'il s'agit \
                     bien de la personne à payer",
                    e(name_on_account)
                ),
            ),
            Outcome::NoMatch => t(
                "Does not match the name on the account: check before you pay".into(),
                "Ne correspond pas au nom du titulaire du compte : vérifiez avant de payer".into(),
            ),
            Outcome::NotPossible => t(
                "Could not be checked with the payee's bank".into(),
                "N'a pas pu être vérifié auprès de la banque du bénéficiaire".into(),
            ),
        };
        rows.push((
            t("Name check".into(), "Vérification du nom".into()),
            "payee-check",
            said,
        ));
    }
    if let Some(remittance) = &payment.remittance {
        rows.push((
            t("Reference".into(), "Libellé".into()),
            "remittance",
            e(remittance),
        ));
    }
    if payment.instant {
        rows.push((
            t("Speed".into(), "Délai".into()),
            "instant",
            t("Instant transfer".into(), "Virement instantané".into()),
        ));
    }
    let rows = rows
        .into_iter()
        .map(|(label, id, value)| format!("<dt>{label}</dt><dd id=\"{id}\">{value}</dd>\n"))
        .collect();
    (heading, title, rows)
}

/// The retention a purpose's policy imposes, in words.
pub(super) fn retention_text(lang: Lang, platform: &str, days: u32) -> String {
    match (lang, days) {
        (Lang::En, 0) => {
            format!("{platform} may not keep this data: it is used once and discarded")
        }
        (Lang::En, 1) => format!("{platform} may keep this data for at most 1 day"),
        (Lang::En, days) => format!("{platform} may keep this data for at most {days} days"),
        (Lang::Fr, 0) => format!(
            "{platform} ne peut pas conserver ces données : elles sont utilisées une fois puis effacées"
        ),
        (Lang::Fr, 1) => format!("{platform} peut conserver ces données au plus 1 jour"),
        (Lang::Fr, days) => format!("{platform} peut conserver ces données au plus {days} jours"),
    }
}

/// Whether a purpose's policy lets the platform pass the data on, in words.
pub(super) fn onward_text(lang: Lang, platform: &str, onward_sharing: bool) -> String {
    match (lang, onward_sharing) {
        (Lang::En, true) => {
            format!("{platform} may pass this data on to others as the description above says")
        }
        (Lang::En, false) => format!("{platform} may not pass this data on to anyone else"),
        (Lang::Fr, true) => format!(
            "{platform} peut transmettre ces données à d'autres, comme le décrit le texte ci-dessus"
        ),
        (Lang::Fr, false) => {
            format!("{platform} ne peut transmettre ces données à personne d'autre")
        }
    }
}

/// Renders the consent screen.
pub(super) fn render(screen: &Screen<'_>) -> String {
    let lang = screen.lang;
    let e = escape;
    let (platform, bank) = (e(screen.platform), e(screen.bank));
    let categories: Vec<&str> = screen
        .scopes
        .iter()
        .map(|scope| category(lang, *scope))
        .collect();
    let t = |en: String, fr: String| if lang == Lang::En { en } else { fr };
    let (heading, title) = match screen.extension {
        None => (
            t(
                format!("{platform} asks to see data from {bank}"),
                format!("{platform} demande à voir des données de {bank}"),
            ),
            t(
                "Share your bank data?".into(),
                "Partager vos données bancaires ?".into(),
            ),
        ),
        Some(_) => (
            t(
                format!("{platform} asks to keep seeing data from {bank}"),
                format!("{platform} demande à continuer de voir des données de {bank}"),
            ),
            t(
                "Extend your consent?".into(),
                "Prolonger votre consentement ?".into(),
            ),
        ),
    };
    let (heading, title) = match screen.payment {
        Some(payment) => {
            let (heading, title, _) = payment_rows(lang, &platform, &bank, payment);
            (heading, title)
        }
        None => (heading, title),
    };
    let extension_input = screen.extension.map_or(String::new(), |key| {
        format!(
            "\n<input type=\"hidden\" name=\"extension\" value=\"{}\">",
            e(key)
        )
    });
    let purpose_label = t("Purpose".into(), "Finalité".into());
    let data_label = t("Data".into(), "Données".into());
    let duration_label = t("Duration".into(), "Durée".into());
    let duration = t(
        format!(
            "For up to <strong>{} days</strong>, until {}",
            screen.days, screen.until
        ),
        format!(
            "Pendant au plus <strong>{} jours</strong>, jusqu'au {}",
            screen.days,
            screen.until.format("%d/%m/%Y")
        ),
    );
    let history_label = t(
        "Transaction history".into(),
        "Historique des opérations".into(),
    );
    let history = t(
        format!("{} days", screen.history_days),
        format!("{} jours", screen.history_days),
    );
    let bank_label = t("Bank".into(), "Banque".into());
    let obligations_label = t(
        format!("What {platform} may do with it"),
        format!("Ce que {platform} peut en faire"),
    );
    let obligations: String = [
        screen.retention_days.map(|days| {
            format!(
                "<li id=\"retention\">{}</li>",
                e(&retention_text(lang, screen.platform, days))
            )
        }),
        screen.onward_sharing.map(|onward| {
            format!(
                "<li id=\"onward-sharing\">{}</li>",
                e(&onward_text(lang, screen.platform, onward))
            )
        }),
    ]
    .into_iter()
    .flatten()
    .collect();
    let facts = match screen.payment {
        Some(payment) => payment_rows(lang, &platform, &bank, payment).2,
        None => format!(
            "<dt>{data_label}</dt><dd id=\"scopes\">{categories}</dd>\n\
             <dt>{history_label}</dt><dd id=\"history\">{history}</dd>\n\
             <dt>{duration_label}</dt><dd id=\"duration\">{duration}</dd>\n",
            categories = e(&categories.join(", ")),
        ),
    };
    let confirm = if screen.payment.is_some() {
        t(
            format!(
                "You will confirm the payment at {bank}; nothing is paid without it. {platform} will see whether it went through."
            ),
            format!(
                "Vous confirmerez le paiement auprès de {bank} ; rien n'est payé sans cela. {platform} saura s'il a abouti."
            ),
        )
    } else {
        t(
            format!(
                "You will confirm at {bank}. You can withdraw this consent at any time, in {platform} or by asking your bank."
            ),
            format!(
                "Vous confirmerez auprès de {bank}. Vous pouvez retirer ce consentement à tout moment, dans {platform} ou auprès de votre banque."
            ),
        )
    };
    let actions = t("Your decision".into(), "Votre décision".into());
    let approve = t(
        format!("Continue to {bank}"),
        format!("Continuer vers {bank}"),
    );
    let cancel = t("Cancel".into(), "Annuler".into());
    // The purpose text comes from the policy file: translated, or in English.
    let purpose_lang = if screen.text_lang == lang {
        String::new()
    } else {
        format!(" lang=\"{}\"", screen.text_lang.code())
    };
    format!(
        r#"<!doctype html>
<html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{STYLE}</style>
</head><body>
<main aria-labelledby="heading">
<h1 id="heading">{heading}</h1>
<section class="card" aria-labelledby="purpose">
<h2 id="purpose"{purpose_lang}>{purpose_title}</h2>
<p{purpose_lang}>{description}</p>
<dl>
<dt>{purpose_label}</dt><dd{purpose_lang}>{purpose_title}</dd>
{facts}<dt>{bank_label}</dt><dd id="bank">{bank}</dd>
</dl>
<h3>{obligations_label}</h3>
<ul>{obligations}</ul>
</section>
<p id="confirm">{confirm}</p>
<form method="post" action="/oauth/authorize" aria-label="{actions}">
<input type="hidden" name="consent_id" value="{consent_id}">
<input type="hidden" name="screen_token" value="{screen_token}">
<input type="hidden" name="lang" value="{code}">{extension_input}
<button type="submit" name="decision" value="approve" id="approve">{approve}</button>
<button type="submit" name="decision" value="deny" id="deny">{cancel}</button>
</form>
</main>
</body></html>"#,
        code = lang.code(),
        purpose_title = e(screen.title),
        description = e(screen.description),
        consent_id = e(screen.consent_id),
        screen_token = e(screen.screen_token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(lang: Lang) -> String {
        render(&Screen {
            lang,
            platform: "Messenger <script>",
            bank: "Demo Bank",
            title: "Balance alerts",
            description: "Tell you when your balance is low.",
            text_lang: Lang::En,
            scopes: &[Scope::Accounts, Scope::Balances],
            days: 90,
            until: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
            history_days: 0,
            retention_days: Some(30),
            onward_sharing: Some(false),
            consent_id: "c-1",
            extension: None,
            screen_token: "t",
            payment: None,
        })
    }

    #[test]
    fn screens_are_localised_escaped_and_script_free() {
        let english = screen(Lang::En);
        assert!(english.contains("<html lang=\"en\">"));
        assert!(english.contains("Continue to Demo Bank"));
        assert!(english.contains("may keep this data for at most 30 days"));
        assert!(english.contains("Messenger &lt;script&gt;"));
        let french = screen(Lang::Fr);
        assert!(french.contains("<html lang=\"fr\">"));
        assert!(french.contains("Continuer vers Demo Bank"));
        assert!(french.contains("Annuler"));
        assert!(french.contains("01/02/2026"));
        assert!(french.contains("<h2 id=\"purpose\" lang=\"en\">Balance alerts</h2>"));
        // A policy with French text: the purpose in French, no language switch on it.
        let translated = render(&Screen {
            lang: Lang::Fr,
            platform: "Messenger",
            bank: "Demo Bank",
            title: "Alertes de solde",
            description: "Vous alerte quand un solde devient bas.",
            text_lang: Lang::Fr,
            scopes: &[Scope::Balances],
            days: 90,
            until: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
            history_days: 0,
            retention_days: None,
            onward_sharing: None,
            consent_id: "c-1",
            extension: Some("urn:bankgate:extension:screen:k"),
            screen_token: "t",
            payment: None,
        });
        assert!(translated.contains("<h2 id=\"purpose\">Alertes de solde</h2>"));
        assert!(translated.contains("<p>Vous alerte quand un solde devient bas.</p>"));
        assert!(!translated.contains("lang=\"en\""), "{translated}");
        assert!(translated.contains("Prolonger votre consentement ?"));
        assert!(translated.contains(
            "<input type=\"hidden\" name=\"extension\" value=\"urn:bankgate:extension:screen:k\">"
        ));
        for page in [english, french, translated] {
            assert!(!page.contains("<script"), "no script");
            assert!(
                !page.contains("http://") && !page.contains("https://"),
                "no CDN"
            );
        }
    }

    #[test]
    fn a_payment_screen_shows_amount_payee_masked_account_and_bank() {
        let payment = PaymentShown {
            amount: "12.50".into(),
            currency: "EUR".into(),
            payee: "Camille <Martin>".into(),
            handle: None,
            verification: Some(Outcome::CloseMatch {
                name_on_account: "Camille <Martin-Durand>".into(),
            }),
            account: PaymentShown::masked("FR7630006000011234567890189"),
            remittance: Some("pizza".into()),
            instant: true,
        };
        assert_eq!(payment.account, "FR76 •••• 0189");
        let page = |lang| {
            render(&Screen {
                lang,
                platform: "Messenger",
                bank: "STET Bank",
                title: "Pay a friend by message",
                description: "Starts one payment.",
                text_lang: lang,
                scopes: &[],
                days: 1,
                until: NaiveDate::from_ymd_opt(2026, 2, 1).unwrap(),
                history_days: 0,
                retention_days: Some(365),
                onward_sharing: Some(false),
                consent_id: "c-1",
                extension: None,
                screen_token: "t",
                payment: Some(&payment),
            })
        };
        let english = page(Lang::En);
        assert!(
            english.contains("<dd id=\"amount\">12.50 EUR</dd>"),
            "{english}"
        );
        assert!(english.contains("<dd id=\"payee\">Camille &lt;Martin&gt;</dd>"));
        assert!(english.contains("<dd id=\"payee-account\">FR76 •••• 0189</dd>"));
        assert!(english.contains("<dd id=\"bank\">STET Bank</dd>"));
        assert!(
            english.contains(
                "<dd id=\"payee-check\">Close to the name on the account, which is Camille \
                 &lt;Martin-Durand&gt;: check"
            ),
            "{english}"
        );
        assert!(english.contains("Confirm a payment?"));
        assert!(!english.contains("id=\"scopes\""));
        assert!(!english.contains("7630006000011234567890189"));
        let french = page(Lang::Fr);
        assert!(
            french.contains("<dd id=\"amount\">12,50 EUR</dd>"),
            "{french}"
        );
        assert!(french.contains("Bénéficiaire"));
        assert!(french.contains("Virement instantané"));
        assert!(french.contains("Vérification du nom"), "{french}");
        assert!(french.contains("Proche du nom du titulaire du compte, qui est Camille"));
    }
}
