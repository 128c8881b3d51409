//! What bankgate's server-rendered pages share (the consent screen, the connected-apps
//! page): the language of the page, its style, plain words for the kinds of data, the error
//! page. No script, no external resource.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::model::{Scope, escape_html as escape};

/// A language of the screens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Fr,
}

impl Lang {
    /// The ISO 639-1 code.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    /// The best language for an `Accept-Language` header (RFC 9110 §12.5.4): the highest
    /// `q` among English and French, English when neither is acceptable.
    pub fn negotiate(headers: &HeaderMap) -> Lang {
        let Some(accept) = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|value| value.to_str().ok())
        else {
            return Lang::En;
        };
        let mut best = (Lang::En, 0.0_f32);
        for (position, item) in accept.split(',').enumerate() {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|param| param.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or_default();
            let lang = match primary {
                "fr" => Lang::Fr,
                "en" => Lang::En,
                _ => continue,
            };
            // Earlier entries win ties; q = 0 means "not acceptable".
            let q = q - position as f32 * 1e-4;
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }
}

/// A kind of data in plain words.
pub fn category(lang: Lang, scope: Scope) -> &'static str {
    match (lang, scope) {
        (Lang::En, Scope::Accounts) => "your accounts (name, type, currency, masked number)",
        (Lang::En, Scope::Balances) => "balances",
        (Lang::En, Scope::Transactions) => "transactions",
        (Lang::En, Scope::Identity) => "account holder name and identifiers",
        (Lang::Fr, Scope::Accounts) => "vos comptes (nom, type, devise, numéro masqué)",
        (Lang::Fr, Scope::Balances) => "les soldes",
        (Lang::Fr, Scope::Transactions) => "les opérations",
        (Lang::Fr, Scope::Identity) => "le nom du titulaire et les identifiants des comptes",
        #[allow(unreachable_patterns)]
        (_, _) => "other data",
    }
}

/// The pages' one style sheet, inline.
pub const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:38rem;margin:2rem auto;\
padding:0 1rem;line-height:1.5;color:#1a1a1a;background:#fff}\
.card{border:1px solid #767676;border-radius:8px;padding:1rem 1.25rem}\
dt{font-weight:600}dd{margin:0 0 .5rem 0}\
button{font-size:1rem;padding:.6rem 1.25rem;margin:.25rem .5rem .25rem 0;border-radius:6px;\
border:2px solid #1f4e9a;cursor:pointer}\
#approve{background:#1f4e9a;color:#fff}#deny{background:#fff;color:#1f4e9a}\
button:focus-visible{outline:3px solid #b35c00;outline-offset:2px}";

/// An error shown to the user (no redirect: the redirect URI is not trusted yet); `message`
/// is in English (an error's safe detail), the heading in `lang`.
pub fn error_page(lang: Lang, status: StatusCode, message: &str) -> Response {
    error_document(lang, status, message, Lang::En)
}

/// [`error_page`] with a message written in `lang` too.
pub fn error_page_in(lang: Lang, status: StatusCode, message: &str) -> Response {
    error_document(lang, status, message, lang)
}

fn error_document(lang: Lang, status: StatusCode, message: &str, message_lang: Lang) -> Response {
    let (title, heading) = match lang {
        Lang::En => ("bankgate", "Something went wrong"),
        Lang::Fr => ("bankgate", "Un problème est survenu"),
    };
    let body = format!(
        "<!doctype html><html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>{STYLE}</style></head><body><main><h1>{heading}</h1>\
         <p lang=\"{message_code}\">{message}</p></main></body></html>",
        code = lang.code(),
        message_code = message_lang.code(),
        message = escape(message),
    );
    (status, Html(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(accept: Option<&str>, expected: Lang) {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT_LANGUAGE, accept.parse().unwrap());
        }
        assert_eq!(Lang::negotiate(&headers), expected, "{accept:?}");
    }

    #[test]
    fn accept_language_picks_english_or_french() {
        check(None, Lang::En);
        check(Some("fr-FR,fr;q=0.9,en;q=0.8"), Lang::Fr);
        check(Some("en-GB,fr;q=0.5"), Lang::En);
        check(Some("de-DE,fr;q=0.7,en;q=0.6"), Lang::Fr);
        check(Some("de-DE"), Lang::En);
        check(Some("fr;q=0,en;q=0.1"), Lang::En);
        check(Some("FR"), Lang::Fr);
        check(Some("en,fr"), Lang::En);
        check(Some("garbage;;q=x"), Lang::En);
    }
}
