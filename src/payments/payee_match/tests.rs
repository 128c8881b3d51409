//! The name-matching table: each case the name a payer typed, the name on the account, and
//! the expected answer.

use super::NameMatch::{self, CloseMatch, Match, NoMatch};
use super::compare;

#[track_caller]
fn check(typed: &str, on_account: &str, expected: NameMatch) {
    assert_eq!(
        compare(typed, on_account),
        expected,
        "{typed:?} against {on_account:?}"
    );
}

#[test]
fn names_match_as_the_table_says() {
    let table: &[(&str, &str, NameMatch)] = &[
        // French.
        ("Camille Martin", "Camille Martin", Match),
        ("camille martin", "CAMILLE MARTIN", Match),
        ("MARTIN Camille", "Camille Martin", Match),
        ("Élodie Lefèvre", "Elodie Lefevre", Match),
        ("Elodie Lefevre", "Élodie Lefèvre", Match),
        ("Jean-Pierre Dupont", "Jean Pierre Dupont", Match),
        ("Mme Camille Martin", "Camille Martin", Match),
        ("François d'Argenson", "Francois D Argenson", Match),
        ("Camile Martin", "Camille Martin", CloseMatch),
        ("C. Martin", "Camille Martin", CloseMatch),
        ("Camille Marie Martin", "Camille Martin", CloseMatch),
        ("Martin", "Camille Martin", NoMatch),
        ("Paul Martin", "Camille Martin", NoMatch),
        ("Jean Dupont", "Camille Martin", NoMatch),
        // German.
        ("Jürgen Müller", "Juergen Mueller", Match),
        ("Juergen Mueller", "Jürgen Müller", Match),
        ("Jurgen Muller", "Jürgen Müller", Match),
        ("Weiß", "Weiss", Match),
        ("Herr Dr. Hans Weiß", "Hans Weiss", Match),
        ("Alice Schmitt", "Alice Schmidt", CloseMatch),
        ("Alice Schmidt", "Alicia Schmidt", CloseMatch),
        ("Alice Schmidt", "Bob Schmidt", NoMatch),
        ("Schmidt", "Alice Schmidt", NoMatch),
        // Chinese: pinyin and Hanzi.
        ("王小明", "王小明", Match),
        ("Wang Xiaoming", "王小明", Match),
        ("Xiaoming Wang", "王小明", Match),
        ("WANG Xiao Ming", "王小明", Match),
        ("王小明", "Wang Xiaoming", Match),
        ("Zhang Wei", "张伟", Match),
        ("王晓明", "王小明", CloseMatch),
        ("Wang Xiaomin", "王小明", CloseMatch),
        ("Li Xiaoming", "王小明", NoMatch),
        ("李娜", "王小明", NoMatch),
        // Companies: legal forms and connectors left out.
        ("Acme Software GmbH", "ACME Software", Match),
        ("Acme Software", "Acme Software GmbH", Match),
        ("Société Générale SA", "Societe Generale", Match),
        (
            "Deutsche Bank AG",
            "Deutsche Bank Aktiengesellschaft",
            Match,
        ),
        ("Dupont & Fils SARL", "Dupont et Fils", Match),
        ("Boulangerie Paul SAS", "Boulangerie Paul", Match),
        ("Acme Soft GmbH", "Acme Software GmbH", CloseMatch),
        ("Acme Softwre Ltd", "Acme Software Ltd", CloseMatch),
        ("Zenith Software GmbH", "Acme Software GmbH", NoMatch),
        ("Acme Software GmbH", "Acme Hardware GmbH", NoMatch),
        // Nothing left to compare.
        ("GmbH", "Acme GmbH", NoMatch),
        ("", "Camille Martin", NoMatch),
        ("Camille Martin", "", NoMatch),
        ("!!!", "Camille Martin", NoMatch),
    ];
    assert!(table.len() >= 40);
    for (typed, on_account, expected) in table {
        check(typed, on_account, *expected);
    }
}

#[test]
fn the_answer_does_not_depend_on_which_side_is_typed() {
    for (left, right) in [
        ("Camile Martin", "Camille Martin"),
        ("王晓明", "王小明"),
        ("Acme Soft GmbH", "Acme Software GmbH"),
        ("Paul Martin", "Camille Martin"),
    ] {
        assert_eq!(
            compare(left, right),
            compare(right, left),
            "{left} / {right}"
        );
    }
}
