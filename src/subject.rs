//! Subject access (GDPR Art. 15): everything bankgate holds and did about one person, found by
//! the platform and the `user_ref` it knows them by — the consents they gave, each with its
//! platform, purpose, legal basis and the retention the platform promised; every event of the
//! audit log about them (accesses and denials, consent changes, tokens); the webhooks sent
//! about their consents. As JSON ([`Report`]) and as a printable page ([`Report::html`]).
//!
//! Producing a report is itself audited ([`audit_report`]: `audit_queried`, the user
//! reference pseudonymised), before the report leaves.

pub mod connected;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::audit::{Action, Auditor, Decision, Event, Filter, Record};
use crate::consent::Consents;
use crate::lifecycle::Webhooks;
use crate::model::WireName;
use crate::model::escape_html as escape;
use crate::oauth::Clients;
use crate::policy::PolicySet;
use crate::store_error::StoreError;

/// The person a report is about: a platform's user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// The platform's client id.
    pub platform: String,
    /// The platform's reference for the person.
    pub user_ref: String,
}

/// Everything bankgate holds and did about one person.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub subject: Subject,
    /// The pseudonym the audit log knows the person by.
    pub pseudonym: String,
    pub generated_at: DateTime<Utc>,
    pub consents: Vec<ConsentEntry>,
    /// Every audit event about the person or their consents, by position.
    pub events: Vec<EventEntry>,
    /// Every webhook sent (or to be sent) to the platform about the person's consents.
    pub webhooks: Vec<WebhookEntry>,
}

/// One consent, in the words of its purpose.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentEntry {
    pub id: String,
    pub platform: String,
    /// The platform's registered name.
    pub platform_name: Option<String>,
    pub bank: String,
    pub purpose: String,
    pub purpose_title: Option<String>,
    pub purpose_description: Option<String>,
    /// The lawful basis of the processing (GDPR Art. 6(1)).
    pub legal_basis: Option<crate::policy::LegalBasis>,
    pub legal_reference: Option<String>,
    /// How long the platform may keep what it received, in days (the purpose's promise).
    pub retention_days: Option<u32>,
    pub onward_sharing: Option<bool>,
    pub data: Vec<String>,
    pub status: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// One audit event, as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventEntry {
    pub position: i64,
    pub time: DateTime<Utc>,
    pub action: String,
    pub decision: String,
    pub actor: String,
    pub consent: Option<String>,
    pub bank: Option<String>,
    pub purpose: Option<String>,
    pub categories: Vec<String>,
    pub fields: Vec<String>,
    pub n_records: u32,
    pub reason: Option<String>,
}

/// One webhook delivery.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEntry {
    pub event: String,
    pub consent: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Where a report reads from, each named.
pub struct Sources<'a> {
    pub consents: &'a dyn Consents,
    pub clients: &'a dyn Clients,
    pub webhooks: &'a dyn Webhooks,
    pub auditor: &'a Auditor,
    pub policies: &'a PolicySet,
}

impl From<&Record> for EventEntry {
    fn from(record: &Record) -> EventEntry {
        let event = &record.event;
        EventEntry {
            position: record.position,
            time: event.time,
            action: event.action.as_str().to_owned(),
            decision: event.decision.as_str().to_owned(),
            actor: event.actor.clone(),
            consent: event.consent.clone(),
            bank: event.bank.clone(),
            purpose: event.purpose.clone(),
            categories: event.categories.clone(),
            fields: event.fields.clone(),
            n_records: event.n_records,
            reason: event.reason.clone(),
        }
    }
}

/// Every event `filter` selects, page after page.
async fn all_events(auditor: &Auditor, filter: Filter) -> Result<Vec<Record>, StoreError> {
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let page = auditor
            .events(&Filter {
                after,
                limit: Some(Filter::MAX_LIMIT),
                ..filter.clone()
            })
            .await?;
        let full = page.len() == Filter::MAX_LIMIT as usize;
        after = page.last().map(|record| record.position);
        records.extend(page);
        if !full {
            return Ok(records);
        }
    }
}

/// The report about `subject` at `now`.
pub async fn report(
    sources: &Sources<'_>,
    subject: &Subject,
    now: DateTime<Utc>,
) -> Result<Report, StoreError> {
    let mut consents = sources
        .consents
        .consents_of(&subject.platform, &subject.user_ref)
        .await?;
    consents.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let platform_name = sources
        .clients
        .client(&subject.platform)
        .await?
        .map(|client| client.name);

    // The person's events, and every event of their consents (some carry no user reference).
    let mut events = BTreeMap::new();
    let by_person = Filter {
        platform: Some(subject.platform.clone()),
        user_ref: Some(subject.user_ref.clone()),
        ..Filter::default()
    };
    for record in all_events(sources.auditor, by_person).await? {
        events.insert(record.position, record);
    }
    for consent in &consents {
        let of_consent = Filter {
            consent: Some(consent.id.clone()),
            ..Filter::default()
        };
        for record in all_events(sources.auditor, of_consent).await? {
            events.insert(record.position, record);
        }
    }

    let consent_ids: Vec<&str> = consents.iter().map(|consent| consent.id.as_str()).collect();
    let mut webhooks: Vec<WebhookEntry> = sources
        .webhooks
        .webhook_deliveries(&subject.platform)
        .await?
        .into_iter()
        .filter(|delivery| consent_ids.contains(&delivery.consent_id.as_str()))
        .map(|delivery| WebhookEntry {
            event: delivery.event,
            consent: delivery.consent_id,
            status: delivery.status.as_str().to_owned(),
            created_at: delivery.created_at,
            delivered_at: delivery.delivered_at,
        })
        .collect();
    webhooks.sort_by(|a, b| (a.created_at, &a.event).cmp(&(b.created_at, &b.event)));

    let consents = consents
        .into_iter()
        .map(|consent| {
            let policy = sources.policies.get(&consent.purpose);
            ConsentEntry {
                platform: consent.client_id.clone(),
                platform_name: platform_name.clone(),
                bank: consent.bank_id.clone(),
                purpose_title: policy.as_ref().map(|p| p.title.clone()),
                purpose_description: policy.as_ref().map(|p| p.description.trim().to_owned()),
                legal_basis: policy.as_ref().map(|p| p.legal_basis),
                legal_reference: policy.as_ref().and_then(|p| p.legal_reference.clone()),
                retention_days: policy.as_ref().map(|p| p.retention_days),
                onward_sharing: policy.as_ref().map(|p| p.onward_sharing),
                data: consent
                    .scopes
                    .iter()
                    .map(|scope| scope.as_str().to_owned())
                    .collect(),
                status: consent.status.as_str().to_owned(),
                since: consent.created_at,
                until: consent.expires_at,
                purpose: consent.purpose,
                id: consent.id,
            }
        })
        .collect();

    Ok(Report {
        pseudonym: sources
            .auditor
            .pseudonym(&subject.platform, &subject.user_ref)
            .await?,
        subject: subject.clone(),
        generated_at: now,
        consents,
        events: events.values().map(EventEntry::from).collect(),
        webhooks,
    })
}

/// Records that `actor` produced the report about `subject` (`audit_queried`, the user
/// reference pseudonymised, the number of events it holds), before it leaves. Fail closed.
pub async fn audit_report(
    auditor: &Auditor,
    actor: &str,
    report: &Report,
    request_id: Option<String>,
) -> Result<Record, StoreError> {
    let mut event = Event::new(Action::AuditQueried, actor, Decision::Allow);
    event.platform = Some(report.subject.platform.clone());
    // Under the person's own key; a person without one (never seen, or erased) is not given
    // one by being asked about.
    if report
        .pseudonym
        .starts_with(crate::audit::Pseudonymiser::PERSONAL_PREFIX)
    {
        event.user_ref = Some(report.subject.user_ref.clone());
    }
    event.n_records = u32::try_from(report.events.len()).unwrap_or(u32::MAX);
    event.reason = Some(
        serde_json::json!({
            "query": "subject-report",
            "platform": report.subject.platform,
            "user_ref": report.pseudonym,
        })
        .to_string(),
    );
    event.request_id = request_id;
    auditor.record(event).await
}

/// Records that `actor` produced `report` about a person found by their bank: as
/// [`audit_report`] for each platform user it holds, or — when it holds none — one
/// `audit_queried` naming the bank only (never the person's identifier nor its digest).
pub async fn audit_bank_person_report(
    auditor: &Auditor,
    actor: &str,
    report: &BankPersonReport,
    request_id: Option<String>,
) -> Result<(), StoreError> {
    for each in &report.reports {
        audit_report(auditor, actor, each, request_id.clone()).await?;
    }
    if report.reports.is_empty() {
        let mut event = Event::new(Action::AuditQueried, actor, Decision::Allow);
        event.bank = Some(report.bank.clone());
        event.reason =
            Some(serde_json::json!({"query": "subject-report", "bank": report.bank}).to_string());
        event.request_id = request_id;
        auditor.record(event).await?;
    }
    Ok(())
}

fn day(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn or_dash(text: Option<&str>) -> String {
    escape(text.unwrap_or("—"))
}

impl Report {
    /// The report as a self-contained printable page: no script, no style (served under a
    /// policy that allows neither).
    pub fn html(&self) -> String {
        let mut page = String::from(PAGE_HEAD);
        page.push_str("<h1>Subject access report</h1>\n");
        page.push_str(&self.sections());
        page.push_str(PAGE_TAIL);
        page
    }

    /// The report's sections: who, consents, audit log, webhooks (below a page's `h1`).
    fn sections(&self) -> String {
        let e = escape;
        let mut page = String::new();
        page.push_str(&format!(
            "<p>Platform <b>{}</b>, user reference <b>{}</b> \
             (in the audit log: <code>{}</code>). Generated {}.</p>\n",
            e(&self.subject.platform),
            e(&self.subject.user_ref),
            e(&self.pseudonym),
            day(&self.generated_at),
        ));
        page.push_str(&format!(
            "<h2>Consents ({})</h2>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>Consent</th><th>Platform</th><th>Bank</th>\
             <th>Purpose</th><th>Legal basis</th><th>Data</th><th>Retention promised</th>\
             <th>Status</th><th>Since</th><th>Until</th></tr>\n",
            self.consents.len()
        ));
        for consent in &self.consents {
            let basis = consent
                .legal_basis
                .and_then(|basis| serde_json::to_value(basis).ok())
                .and_then(|value| value.as_str().map(str::to_owned));
            let retention = match consent.retention_days {
                Some(0) => "not kept".to_owned(),
                Some(days) => format!("{days} days"),
                None => "—".to_owned(),
            };
            page.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td><b>{}</b><br>{}</td>\
                 <td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&consent.id),
                or_dash(consent.platform_name.as_deref().or(Some(&consent.platform))),
                e(&consent.bank),
                or_dash(consent.purpose_title.as_deref().or(Some(&consent.purpose))),
                or_dash(consent.purpose_description.as_deref()),
                or_dash(basis.as_deref()),
                consent
                    .legal_reference
                    .as_deref()
                    .map(|reference| format!(" ({})", e(reference)))
                    .unwrap_or_default(),
                e(&consent.data.join(", ")),
                e(&retention),
                e(&consent.status),
                day(&consent.since),
                day(&consent.until),
            ));
        }
        page.push_str("</table>\n");
        page.push_str(&format!(
            "<h2>Audit log ({} events)</h2>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>#</th><th>Time</th><th>Action</th>\
             <th>Decision</th><th>By</th><th>Consent</th><th>Data released</th>\
             <th>Reason</th></tr>\n",
            self.events.len()
        ));
        for event in &self.events {
            let released = if event.fields.is_empty() {
                String::new()
            } else {
                format!("{} record(s): {}", event.n_records, event.fields.join(", "))
            };
            page.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>\n",
                event.position,
                day(&event.time),
                e(&event.action),
                e(&event.decision),
                e(&event.actor),
                or_dash(event.consent.as_deref()),
                e(&released),
                or_dash(event.reason.as_deref()),
            ));
        }
        page.push_str("</table>\n");
        page.push_str(&format!(
            "<h2>Webhooks sent to the platform ({})</h2>\n<table border=\"1\" cellpadding=\"4\">\n<tr><th>Event</th>\
             <th>Consent</th><th>Status</th><th>Enqueued</th><th>Delivered</th></tr>\n",
            self.webhooks.len()
        ));
        for webhook in &self.webhooks {
            page.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                e(&webhook.event),
                e(&webhook.consent),
                e(&webhook.status),
                day(&webhook.created_at),
                webhook
                    .delivered_at
                    .as_ref()
                    .map(day)
                    .unwrap_or_else(|| "—".into()),
            ));
        }
        page.push_str("</table>\n");
        page
    }
}

/// The start of a printable report page (no script, no style).
const PAGE_HEAD: &str = "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
                         <title>Subject access report</title>\n</head>\n<body>\n";
/// The end of a printable report page.
const PAGE_TAIL: &str = "</body>\n</html>\n";

/// The report about a person found by their bank: one [`Report`] for each platform user they
/// are known as through the consents they approved at that bank.
#[derive(Debug, Clone, Serialize)]
pub struct BankPersonReport {
    pub bank: String,
    /// The digest bankgate keeps of the person at the bank (`crypto::Sealer::bank_person`),
    /// never the bank's identifier itself.
    pub bank_person: String,
    pub generated_at: DateTime<Utc>,
    pub reports: Vec<Report>,
}

/// The report about the person `bank_person` (the digest bankgate keeps of them) at `bank`,
/// at `now`: every platform user they approved a consent as there, each with its whole
/// report — their consents at every bank under that platform's reference, the audit events,
/// the webhooks.
pub async fn report_of_bank_person(
    sources: &Sources<'_>,
    bank: &str,
    bank_person: &str,
    now: DateTime<Utc>,
) -> Result<BankPersonReport, StoreError> {
    let mut subjects: Vec<Subject> = sources
        .consents
        .consents_of_bank_person(bank, bank_person)
        .await?
        .into_iter()
        .map(|consent| Subject {
            platform: consent.client_id,
            user_ref: consent.user_ref,
        })
        .collect();
    subjects.sort_by(|a, b| (&a.platform, &a.user_ref).cmp(&(&b.platform, &b.user_ref)));
    subjects.dedup();
    let mut reports = Vec::with_capacity(subjects.len());
    for subject in &subjects {
        reports.push(report(sources, subject, now).await?);
    }
    Ok(BankPersonReport {
        bank: bank.to_owned(),
        bank_person: bank_person.to_owned(),
        generated_at: now,
        reports,
    })
}

impl BankPersonReport {
    /// The report as one printable page: each platform user's report in turn.
    pub fn html(&self) -> String {
        let e = escape;
        let mut page = String::from(PAGE_HEAD);
        page.push_str(&format!(
            "<h1>Subject access report</h1>\n<p>The person bank <b>{}</b> knows by the identifier \
             given (kept by bankgate as <code>{}</code>), known to {} platform user(s). \
             Generated {}.</p>\n",
            e(&self.bank),
            e(&self.bank_person),
            self.reports.len(),
            day(&self.generated_at),
        ));
        for report in &self.reports {
            page.push_str(&format!(
                "<hr>\n<h2>As {} on {}</h2>\n",
                e(&report.subject.user_ref),
                e(&report.subject.platform)
            ));
            page.push_str(&report.sections());
        }
        page.push_str(PAGE_TAIL);
        page
    }
}
