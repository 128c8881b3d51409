//! Verification of payee: does the name a payer typed match the name on the payee's account?
//! Pure — no I/O, no HTTP types. The answer is the EPC verification-of-payee scheme's: `match`,
//! `close_match` (the caller may then show the name on the account), `no_match`; `not_possible`
//! is the verifier's to give, when no name can be had for the account.
//!
//! The algorithm ([`compare`]), applied to both names alike:
//! 1. **Script.** Letters are transliterated to ASCII (`deunicode`): accents go (`Élodie` →
//!    `elodie`), `ß` becomes `ss`, Chinese characters become pinyin syllables without tones. A
//!    name written in Chinese characters is read as the family name (its first character) and
//!    the given name (the rest, one word): `王小明` → `wang xiaoming`, as it is written in
//!    pinyin. German umlauts are read both ways (`ü` → `u` and `ue`), so `Müller` is
//!    `Mueller` as much as `Muller`.
//! 2. **Words.** Lower case; punctuation and hyphens separate words (`Jean-Pierre` =
//!    `Jean Pierre`); connectors (`&`, `and`, `et`, `und`), titles (`Mr`, `Mme`, `Herr`, `Dr`…)
//!    and legal forms (`GmbH`, `SARL`, `SAS`, `Ltd`, `Inc`, `AG`…) are left out.
//! 3. **Match**: the same words in any order (`MARTIN Camille` = `Camille Martin`), or the same
//!    letters with the spaces left out, in the order written (`Wang Xiao Ming` = `王小明`).
//!    Two names both in Chinese characters match only character for character: the same pinyin
//!    written with other characters (`王晓明` for `王小明`) is at best a close match.
//! 4. **Close match**: every word of the shorter name pairs with its own word of the other —
//!    the same, its initial or abbreviation (`J.` or `Jo` for `John`), or a word at most one
//!    edit in five away (`Camile` for `Camille`) — with at least two words paired (a family
//!    name alone never matches a full name) and one of them the same; or the whole names,
//!    words sorted, at least [`CLOSE_MATCH_SIMILARITY`] alike (normalised Damerau-Levenshtein).
//! 5. Otherwise **no match**. A name that is empty once titles and legal forms are left out
//!    matches nothing.

#[cfg(test)]
mod tests;

use crate::model::WireName;
use serde::{Deserialize, Serialize};

/// The similarity (normalised Damerau-Levenshtein, 0 to 1) from which two whole names, words
/// sorted, are a close match.
pub const CLOSE_MATCH_SIMILARITY: f64 = 0.85;

/// The similarity from which two words pair in a close match (one edit in five).
const WORD_SIMILARITY: f64 = 0.8;

/// How the name a payer typed compares with the name on the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr, strum::EnumString, strum::VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum NameMatch {
    Match,
    CloseMatch,
    NoMatch,
}

impl WireName for NameMatch {}

/// Words left out of a name: connectors, titles, legal forms (lower case, ASCII).
const IGNORED: &[&str] = &[
    // Connectors.
    "and",
    "et",
    "und",
    // Titles.
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "mme",
    "mlle",
    "herr",
    "frau",
    "sir",
    // Legal forms: French, German, English, and a few more European ones.
    "sa",
    "sas",
    "sasu",
    "sarl",
    "eurl",
    "sci",
    "snc",
    "scop",
    "gmbh",
    "ag",
    "kg",
    "ohg",
    "ug",
    "gbr",
    "kgaa",
    "aktiengesellschaft",
    "gesellschaft",
    "mbh",
    "ltd",
    "limited",
    "plc",
    "llc",
    "llp",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "bv",
    "nv",
    "spa",
    "srl",
    "se",
    "ab",
    "oy",
    "as",
];

/// One reading of a name: its words, and its Chinese characters when it is written in them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reading {
    words: Vec<String>,
    han: Option<String>,
}

impl Reading {
    fn sorted(&self) -> Vec<String> {
        let mut words = self.words.clone();
        words.sort();
        words
    }

    fn joined(&self) -> String {
        self.words.concat()
    }
}

/// Compares the name a payer typed with the name on the account (module docs).
pub fn compare(typed: &str, on_account: &str) -> NameMatch {
    let typed = readings(typed);
    let account = readings(on_account);
    let mut best = NameMatch::NoMatch;
    for left in &typed {
        for right in &account {
            let found = compare_readings(left, right);
            if found == NameMatch::Match {
                return found;
            }
            if found == NameMatch::CloseMatch {
                best = found;
            }
        }
    }
    best
}

fn compare_readings(left: &Reading, right: &Reading) -> NameMatch {
    if left.words.is_empty() || right.words.is_empty() {
        return NameMatch::NoMatch;
    }
    let same = left.sorted() == right.sorted() || left.joined() == right.joined();
    // In Chinese characters on both sides, the characters decide, not their pinyin.
    let characters_differ = matches!((&left.han, &right.han), (Some(a), Some(b)) if a != b);
    if same && !characters_differ {
        return NameMatch::Match;
    }
    if same || paired(&left.words, &right.words) || paired(&right.words, &left.words) {
        return NameMatch::CloseMatch;
    }
    let similarity =
        strsim::normalized_damerau_levenshtein(&left.sorted().join(" "), &right.sorted().join(" "));
    if similarity >= CLOSE_MATCH_SIMILARITY {
        NameMatch::CloseMatch
    } else {
        NameMatch::NoMatch
    }
}

/// Whether every word of `short` pairs with its own word of `long` (the same, an initial or
/// abbreviation of it, or one edit in five), at least two of them, one the same.
fn paired(short: &[String], long: &[String]) -> bool {
    if short.len() > long.len() || short.len() < 2 {
        return false;
    }
    let mut taken = vec![false; long.len()];
    let mut exact = 0;
    // Exact words first, so that an abbreviation does not take another word's partner.
    let mut order: Vec<&String> = short.iter().collect();
    order.sort_by_key(|word| !long.contains(word));
    for word in order {
        let partner = long.iter().enumerate().find(|(i, other)| {
            !taken[*i]
                && (*other == word
                    || other.starts_with(word.as_str())
                    || strsim::normalized_damerau_levenshtein(word, other) >= WORD_SIMILARITY)
        });
        match partner {
            Some((i, other)) => {
                taken[i] = true;
                if other == word {
                    exact += 1;
                }
            }
            None => return false,
        }
    }
    exact >= 1
}

/// The readings of a name (module docs, steps 1 and 2).
fn readings(name: &str) -> Vec<Reading> {
    let han: String = name.chars().filter(|c| is_han(*c)).collect();
    let written_in_han = !han.is_empty()
        && name
            .chars()
            .all(|c| is_han(c) || c.is_whitespace() || c == '·');
    let mut readings = Vec::new();
    if written_in_han {
        let mut syllables = han.chars().map(|c| {
            deunicode::deunicode_char(c)
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let family = syllables.next().unwrap_or_default();
        let given: String = syllables.collect();
        let words = [family, given]
            .into_iter()
            .filter(|word| !word.is_empty())
            .collect();
        readings.push(Reading {
            words,
            han: Some(han),
        });
        return readings;
    }
    readings.push(Reading {
        words: words(&deunicode::deunicode(name)),
        han: None,
    });
    if name.chars().any(|c| "äöüÄÖÜ".contains(c)) {
        let spelled: String = name
            .chars()
            .map(|c| match c {
                'ä' => "ae".to_owned(),
                'ö' => "oe".to_owned(),
                'ü' => "ue".to_owned(),
                'Ä' => "Ae".to_owned(),
                'Ö' => "Oe".to_owned(),
                'Ü' => "Ue".to_owned(),
                other => other.to_string(),
            })
            .collect();
        readings.push(Reading {
            words: words(&deunicode::deunicode(&spelled)),
            han: None,
        });
    }
    readings
}

/// The words of an ASCII name, lower case, connectors, titles and legal forms left out.
fn words(ascii: &str) -> Vec<String> {
    ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .filter(|word| !IGNORED.contains(&word.as_str()))
        .collect()
}

/// CJK unified ideographs (with extension A) and compatibility ideographs.
fn is_han(c: char) -> bool {
    matches!(c, '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}' | '\u{F900}'..='\u{FAFF}')
}
