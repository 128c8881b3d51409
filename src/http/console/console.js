// The compliance console: signs in with the client credentials grant, then reads the audit log
// through the compliance API (/v1/audit/...). Plain JavaScript, no framework, no build step.
//
// The client credentials and the access token live in this module's memory only (never in
// localStorage, sessionStorage or a cookie); the token is requested again shortly before it
// expires, and once more if the API answers 401. Everything shown from the API is inserted as
// text (textContent), never as HTML.

const TOKEN_PATH = '/oauth/token';
const AUDIT_PATH = '/v1/audit';
const SCOPE = 'audit:read';
const DECISIONS = ['allow', 'deny', 'error'];
const DECISION_LABELS = { allow: 'Allowed', deny: 'Denied', error: 'Errors' };
const SVG_NS = 'http://www.w3.org/2000/svg';
const FILTER_FIELDS = [
  'platform', 'bank', 'consent', 'user_ref', 'purpose', 'action', 'decision', 'from', 'to',
];

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------------
// Session: credentials and token, in memory only.

let session = null; // { clientId, secret, token, expiresAt, pending }

/** An error answer from the gateway, with the text safe to show. */
class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Form-urlencodes one part of HTTP Basic client credentials (RFC 6749 §2.3.1). */
function formEncode(text) {
  return new URLSearchParams({ x: text }).toString().slice(2);
}

/** The text to show for a failed response: problem+json `detail`, or RFC 6749 `error_description`. */
async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a 404 from a route that does not exist, a proxy page): the status says enough.
  }
  const detail = body?.detail ?? body?.error_description ?? body?.title ?? body?.error;
  if (response.status === 404 && !detail) {
    return new ApiError(404, 'This gateway does not offer this yet (HTTP 404).');
  }
  return new ApiError(response.status, detail || `The gateway answered HTTP ${response.status}.`);
}

/** Requests a token with the credentials held in memory. */
async function requestToken(credentials) {
  const basic = btoa(`${formEncode(credentials.clientId)}:${formEncode(credentials.secret)}`);
  const response = await fetch(TOKEN_PATH, {
    method: 'POST',
    headers: {
      Authorization: `Basic ${basic}`,
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: SCOPE }),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!response.ok) throw await failure(response);
  const body = await response.json();
  const scopes = String(body.scope ?? '').split(' ');
  if (!scopes.includes(SCOPE)) {
    throw new ApiError(403, `This client is not a compliance client (its tokens carry "${body.scope}", not "${SCOPE}").`);
  }
  const lifetime = Math.max(1, Number(body.expires_in) || 60);
  // Renew a little before expiry: a tenth of the lifetime, at most 30 s.
  const margin = Math.min(30, lifetime / 10);
  return { token: body.access_token, expiresAt: Date.now() + (lifetime - margin) * 1000 };
}

/** A current access token, requested again when the one held has (nearly) expired. */
async function accessToken(force = false) {
  if (!session) throw new ApiError(401, 'Sign in first.');
  if (!force && session.token && Date.now() < session.expiresAt) return session.token;
  if (!session.pending) {
    const current = session;
    current.pending = requestToken(current)
      .then((issued) => {
        current.token = issued.token;
        current.expiresAt = issued.expiresAt;
        return issued.token;
      })
      .finally(() => {
        current.pending = null;
      });
  }
  return session.pending;
}

/** GETs `path` from the compliance API with the bearer token; retries once after a 401. */
async function api(path, { accept = 'application/json' } = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const token = await accessToken(attempt > 0);
    const response = await fetch(path, {
      headers: { Authorization: `Bearer ${token}`, Accept: accept },
      credentials: 'omit',
      cache: 'no-store',
    });
    if (response.status === 401 && attempt === 0) continue;
    if (!response.ok) throw await failure(response);
    return response;
  }
}

async function apiJson(path) {
  return (await api(path)).json();
}

// ---------------------------------------------------------------------------------------------
// Small DOM helpers.

function element(tag, text, attributes = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function svg(tag, attributes = {}, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function showError(id, error) {
  $(id).textContent = error instanceof ApiError || error instanceof Error
    ? error.message
    : String(error);
}

function clearError(id) {
  $(id).textContent = '';
}

/** Runs `work` with `button` disabled, so a double click sends one request. */
async function busy(button, work) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/** "1 event", "2 events". */
function count(n, noun) {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function show(value) {
  return value === null || value === undefined || value === '' ? '—' : value;
}

// ---------------------------------------------------------------------------------------------
// Sign in and out.

function signedIn(clientId) {
  $('session-status').textContent = `Signed in as ${clientId}`;
  $('sign-in').hidden = true;
  $('workspace').hidden = false;
  $('sign-out').hidden = false;
  $('search-heading').setAttribute('tabindex', '-1');
  $('search-heading').focus();
}

function signOut() {
  session = null;
  $('sign-in-form').reset();
  $('search-form').reset();
  for (const id of ['results-status', 'export-status', 'summary-status', 'verify-result']) {
    $(id).textContent = '';
  }
  for (const id of ['sign-in-error', 'search-error', 'summary-error', 'verify-error', 'event-error']) {
    clearError(id);
  }
  $('results').hidden = true;
  $('results').tBodies[0].replaceChildren();
  $('next-page').hidden = true;
  $('first-page').hidden = true;
  $('event').hidden = true;
  $('chart').hidden = true;
  $('workspace').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('session-status').textContent = 'Not signed in';
  $('client-id').focus();
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector('button[type="submit"]');
  clearError('sign-in-error');
  const clientId = $('client-id').value.trim();
  const secret = $('client-secret').value;
  await busy(button, async () => {
    const candidate = { clientId, secret, token: null, expiresAt: 0, pending: null };
    try {
      const issued = await requestToken(candidate);
      candidate.token = issued.token;
      candidate.expiresAt = issued.expiresAt;
    } catch (error) {
      showError('sign-in-error', `Sign-in failed: ${error.message}`);
      $('client-secret').focus();
      $('client-secret').select();
      return;
    }
    session = candidate;
    $('client-secret').value = '';
    signedIn(clientId);
  });
}

// ---------------------------------------------------------------------------------------------
// Search, results and pages.

let currentQuery = null; // URLSearchParams of the filters in force
let pageNumber = 1;

/** The filters of the search form as query parameters (empty fields left out). */
function filterParams() {
  const form = $('search-form');
  const params = new URLSearchParams();
  for (const name of FILTER_FIELDS) {
    const value = form.elements[name].value.trim();
    if (!value) continue;
    if (name === 'from' || name === 'to') {
      // datetime-local is the officer's local time; the API takes RFC 3339.
      const date = new Date(value);
      if (Number.isNaN(date.getTime())) throw new ApiError(400, `"${value}" is not a date and time.`);
      params.set(name, date.toISOString());
    } else {
      params.set(name, value);
    }
  }
  return params;
}

function decisionCell(decision) {
  return element('td', decision, { class: `decision-${decision}` });
}

function renderEvents(page) {
  const body = $('results').tBodies[0];
  const rows = page.events.map((record) => {
    const row = element('tr');
    row.dataset.position = record.position;
    const cell = element('td');
    const open = element('button', record.position, {
      type: 'button',
      class: 'link',
      'aria-label': `Open event ${record.position}`,
    });
    open.dataset.position = record.position;
    cell.append(open);
    row.append(
      cell,
      element('td', record.time),
      element('td', record.action),
      decisionCell(record.decision),
      element('td', show(record.purpose)),
      element('td', show(record.platform)),
      element('td', show(record.bank)),
      element('td', show(record.consent), { class: 'id' }),
      element('td', record.actor),
      element('td', record.n_records),
    );
    return row;
  });
  body.replaceChildren(...rows);
  $('results').hidden = rows.length === 0;

  $('results-caption').textContent = `Events, page ${pageNumber}`;
  $('results-status').textContent = rows.length === 0
    ? 'No events match these filters.'
    : `Page ${pageNumber}: ${count(rows.length, 'event')}${page.next_after ? ', more on the next page' : ''}.`;
  const next = $('next-page');
  next.hidden = !page.next_after;
  next.dataset.after = page.next_after ?? '';
  $('first-page').hidden = pageNumber === 1;
}

async function loadPage(after) {
  const params = new URLSearchParams(currentQuery);
  params.set('limit', $('f-limit').value);
  if (after) params.set('after', after);
  const page = await apiJson(`${AUDIT_PATH}/events?${params}`);
  renderEvents(page);
}

async function onSearch(event) {
  event.preventDefault();
  clearError('search-error');
  await busy(event.currentTarget.querySelector('button[type="submit"]'), async () => {
    try {
      currentQuery = filterParams();
      pageNumber = 1;
      await loadPage(null);
    } catch (error) {
      showError('search-error', error);
    }
  });
}

async function onNextPage(event) {
  clearError('search-error');
  const after = event.currentTarget.dataset.after;
  await busy(event.currentTarget, async () => {
    try {
      pageNumber += 1;
      await loadPage(after);
    } catch (error) {
      pageNumber -= 1;
      showError('search-error', error);
    }
  });
}

async function onFirstPage(event) {
  clearError('search-error');
  await busy(event.currentTarget, async () => {
    try {
      pageNumber = 1;
      await loadPage(null);
    } catch (error) {
      showError('search-error', error);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// One event and its inclusion data.

function facts(list, entries) {
  const nodes = [];
  for (const [name, value, kind] of entries) {
    nodes.push(element('dt', name));
    const dd = element('dd');
    dd.dataset.field = name;
    if (kind === 'pre') {
      dd.append(element('pre', value));
    } else if (kind === 'code') {
      dd.append(element('code', show(value)));
    } else {
      dd.textContent = show(value);
    }
    nodes.push(dd);
  }
  list.replaceChildren(...nodes);
}

function listText(values) {
  return Array.isArray(values) && values.length ? values.join(', ') : '—';
}

async function openEvent(position) {
  const section = $('event');
  section.hidden = false;
  clearError('event-error');
  $('event-heading').textContent = `Event ${position}`;
  $('event-body').hidden = true;
  try {
    const answer = await apiJson(`${AUDIT_PATH}/events/${encodeURIComponent(position)}`);
    const record = answer.event;
    const inclusion = answer.inclusion ?? {};
    facts($('event-fields'), [
      ['position', record.position],
      ['id', record.id, 'code'],
      ['time', record.time],
      ['actor', record.actor],
      ['action', record.action],
      ['decision', record.decision],
      ['reason', record.reason],
      ['platform', record.platform],
      ['bank', record.bank],
      ['consent', record.consent, 'code'],
      ['user_ref', record.user_ref, 'code'],
      ['purpose', record.purpose],
      ['policy_hash', record.policy_hash, 'code'],
      ['categories', listText(record.categories)],
      ['fields', listText(record.fields)],
      ['n_records', record.n_records],
      ['request_id', record.request_id, 'code'],
      ['prev_hash', record.prev_hash, 'code'],
      ['hash', record.hash, 'code'],
    ]);
    const checkpoint = inclusion.checkpoint
      ? JSON.stringify(inclusion.checkpoint, null, 2)
      : 'None yet: no signed checkpoint covers this position.';
    facts($('event-inclusion'), [
      ['position', inclusion.position],
      ['prev_hash', inclusion.prev_hash, 'code'],
      ['hash', inclusion.hash, 'code'],
      ['canonical', inclusion.canonical, 'pre'],
      ['checkpoint', checkpoint, 'pre'],
      ['verify', inclusion.verify, 'pre'],
    ]);
    $('event-body').hidden = false;
  } catch (error) {
    showError('event-error', error);
  }
  $('event-heading').focus();
}

async function onResultsClick(event) {
  const button = event.target.closest('button[data-position]');
  if (!button) return;
  await openEvent(button.dataset.position);
}

function onCloseEvent() {
  const position = $('event-heading').textContent.replace('Event ', '');
  $('event').hidden = true;
  const back = $('results').querySelector(`button[data-position="${CSS.escape(position)}"]`);
  (back ?? $('search-heading')).focus();
}

// ---------------------------------------------------------------------------------------------
// The chart: decisions per day, one panel per purpose, stacked by decision.

const DAY_MS = 24 * 60 * 60 * 1000;
const NO_PURPOSE = '(no purpose)';

/** Every day from `first` to `last` (YYYY-MM-DD, UTC) when the span is short, else `present`. */
function dayAxis(present) {
  const sorted = [...present].sort();
  if (sorted.length === 0) return [];
  const first = Date.parse(`${sorted[0]}T00:00:00Z`);
  const last = Date.parse(`${sorted[sorted.length - 1]}T00:00:00Z`);
  if (Number.isNaN(first) || Number.isNaN(last) || (last - first) / DAY_MS > 62) return sorted;
  const days = [];
  for (let time = first; time <= last; time += DAY_MS) {
    days.push(new Date(time).toISOString().slice(0, 10));
  }
  return days;
}

/** Sums the summary rows (over platforms) by purpose, day and decision. */
function aggregate(rows) {
  const purposes = new Map(); // purpose → day → { allow, deny, error }
  const days = new Set();
  for (const row of rows) {
    const purpose = row.purpose ?? NO_PURPOSE;
    if (!DECISIONS.includes(row.decision)) continue;
    days.add(row.day);
    if (!purposes.has(purpose)) purposes.set(purpose, new Map());
    const byDay = purposes.get(purpose);
    if (!byDay.has(row.day)) byDay.set(row.day, { allow: 0, deny: 0, error: 0 });
    byDay.get(row.day)[row.decision] += Number(row.count) || 0;
  }
  // Purposes by name; events without one (tokens, policy loads, queries) last.
  const sortedPurposes = [...purposes.keys()].filter((purpose) => purpose !== NO_PURPOSE).sort();
  if (purposes.has(NO_PURPOSE)) sortedPurposes.push(NO_PURPOSE);
  return { purposes: sortedPurposes, byPurpose: purposes, days: dayAxis(days) };
}

/** One panel: a purpose's decisions per day, stacked, as its own SVG. */
function panel(purpose, byDay, days) {
  const bar = 22;
  const gap = 10;
  const left = 40;
  const top = 24;
  const plotHeight = 110;
  const width = Math.max(200, left + days.length * (bar + gap) + gap);
  const baseline = top + plotHeight;
  const height = baseline + 24;
  let max = 0;
  for (const counts of byDay.values()) {
    max = Math.max(max, counts.allow + counts.deny + counts.error);
  }
  const scale = max > 0 ? (plotHeight - 6) / max : 0;
  const root = svg('svg', {
    xmlns: SVG_NS,
    class: 'panel',
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    focusable: 'false',
    'data-purpose': purpose,
  });
  root.append(
    svg('text', { class: 'chart-title', x: 0, y: 15 }, purpose),
    svg('line', { class: 'chart-axis', x1: left - 4, x2: width, y1: baseline, y2: baseline }),
    svg('line', { class: 'chart-axis', x1: left - 4, x2: left - 4, y1: top, y2: baseline }),
    svg('text', { class: 'chart-label', x: left - 8, y: top + 10, 'text-anchor': 'end' }, max),
    svg('text', { class: 'chart-label', x: left - 8, y: baseline, 'text-anchor': 'end' }, 0),
  );
  days.forEach((day, column) => {
    const x = left + gap / 2 + column * (bar + gap);
    const counts = byDay.get(day) ?? { allow: 0, deny: 0, error: 0 };
    let y = baseline;
    for (const decision of DECISIONS) {
      const count = counts[decision];
      if (!count) continue;
      const h = Math.max(1, count * scale);
      y -= h;
      const rect = svg('rect', {
        class: `bar bar-${decision}`,
        x,
        y,
        width: bar,
        height: h,
        'data-purpose': purpose,
        'data-day': day,
        'data-decision': decision,
        'data-count': count,
      });
      rect.append(svg('title', {}, `${purpose}, ${day}: ${count} ${DECISION_LABELS[decision].toLowerCase()}`));
      root.append(rect);
    }
    root.append(svg('text', {
      class: 'chart-label',
      x: x + bar / 2,
      y: baseline + 16,
      'text-anchor': 'middle',
    }, day.slice(5)));
  });
  return root;
}

function drawChart(data) {
  $('chart-svg').replaceChildren(
    ...data.purposes.map((purpose) => panel(purpose, data.byPurpose.get(purpose), data.days)),
  );

  $('chart-legend').replaceChildren(...DECISIONS.map((decision) => {
    const item = element('li');
    item.append(element('span', null, { class: `swatch swatch-${decision}` }), DECISION_LABELS[decision]);
    return item;
  }));

  const rows = [];
  for (const day of data.days) {
    for (const purpose of data.purposes) {
      const counts = data.byPurpose.get(purpose).get(day);
      if (!counts) continue;
      const row = element('tr');
      row.append(
        element('th', day, { scope: 'row' }),
        element('td', purpose),
        element('td', counts.allow),
        element('td', counts.deny),
        element('td', counts.error),
      );
      rows.push(row);
    }
  }
  $('chart-table').tBodies[0].replaceChildren(...rows);
}

async function onSummary(event) {
  event.preventDefault();
  clearError('summary-error');
  $('summary-status').textContent = '';
  await busy(event.currentTarget.querySelector('button[type="submit"]'), async () => {
    try {
      const params = new URLSearchParams();
      const from = $('s-from').value;
      const to = $('s-to').value;
      // Days are UTC; "to" is included, so the bound is the start of the next day.
      if (from) params.set('from', `${from}T00:00:00Z`);
      if (to) params.set('to', new Date(Date.parse(`${to}T00:00:00Z`) + DAY_MS).toISOString());
      const query = params.toString();
      const summary = await apiJson(`${AUDIT_PATH}/summary${query ? `?${query}` : ''}`);
      const data = aggregate(summary.rows ?? []);
      if (data.purposes.length === 0) {
        $('chart').hidden = true;
        $('summary-status').textContent = 'No decisions in this period.';
        return;
      }
      drawChart(data);
      $('chart').hidden = false;
      $('summary-status').textContent =
        `Decisions for ${count(data.purposes.length, 'purpose')} over ${count(data.days.length, 'day')}.`;
    } catch (error) {
      $('chart').hidden = true;
      showError('summary-error', error);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Verification.

async function onVerify(event) {
  clearError('verify-error');
  const result = $('verify-result');
  result.textContent = '';
  result.className = '';
  delete result.dataset.ok;
  await busy(event.currentTarget, async () => {
    result.textContent = 'Verifying…';
    try {
      const report = await apiJson(`${AUDIT_PATH}/verify`);
      result.dataset.ok = String(Boolean(report.ok));
      const head = report.head
        ? ` Head: position ${report.head.position}${report.head.hash ? `, hash ${report.head.hash}` : ''}.`
        : '';
      if (report.ok) {
        result.className = 'ok';
        result.textContent = `Verification OK: the chain is intact. ${report.events_checked} events and ${report.checkpoints_checked} checkpoints checked.${head}`;
      } else {
        const broken = report.first_broken;
        result.className = 'broken';
        result.textContent = broken
          ? `Verification FAILED at position ${broken.position}: ${broken.reason}. ${report.events_checked} events checked.`
          : `Verification FAILED. ${report.events_checked} events checked.`;
      }
    } catch (error) {
      result.textContent = '';
      showError('verify-error', error);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Export: fetched with the token, checked complete, saved through a Blob and an object URL.

/**
 * The number of events a downloaded export says it holds, from its trailer — the last line of
 * a complete export: `{"complete":true,"n_events":N}` (JSON Lines) or a row `#complete,N,…`
 * (CSV). `null` when there is none: the download was cut short.
 */
async function exportedCount(blob, format) {
  const tail = await blob.slice(Math.max(0, blob.size - 4096)).text();
  const lines = tail.split(/\r?\n/).filter((line) => line !== '');
  const last = lines[lines.length - 1] ?? '';
  if (format === 'csv') {
    const match = /^#complete,(\d+),*$/.exec(last);
    return match ? Number(match[1]) : null;
  }
  try {
    const trailer = JSON.parse(last);
    return trailer?.complete === true && Number.isInteger(trailer.n_events) ? trailer.n_events : null;
  } catch {
    return null;
  }
}

function fileName(response, format) {
  const disposition = response.headers.get('Content-Disposition') ?? '';
  const match = /filename="?([^";]+)"?/i.exec(disposition);
  if (match) return match[1];
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  return `audit-events-${stamp}.${format}`;
}

async function onExport(event) {
  event.preventDefault();
  clearError('search-error');
  const status = $('export-status');
  status.textContent = '';
  await busy(event.currentTarget.querySelector('button[type="submit"]'), async () => {
    try {
      const format = $('export-format').value;
      const params = filterParams();
      params.set('format', format);
      const accept = format === 'csv' ? 'text/csv' : 'application/x-ndjson';
      status.textContent = 'Preparing the export…';
      const response = await api(`${AUDIT_PATH}/export?${params}`, { accept });
      const blob = await response.blob();
      const exported = await exportedCount(blob, format);
      if (exported === null) {
        throw new Error('The export was cut short (it does not end with its "complete" line), so it was not saved. Try again.');
      }
      const name = fileName(response, format);
      const url = URL.createObjectURL(blob);
      const link = element('a', null, { href: url, download: name, hidden: '' });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      status.textContent = `Downloaded ${name}: ${count(exported, 'event')}, complete (${blob.size} bytes).`;
    } catch (error) {
      status.textContent = '';
      showError('search-error', error);
    }
  });
}

// ---------------------------------------------------------------------------------------------

$('sign-in-form').addEventListener('submit', onSignIn);
$('sign-out').addEventListener('click', signOut);
$('search-form').addEventListener('submit', onSearch);
$('next-page').addEventListener('click', onNextPage);
$('first-page').addEventListener('click', onFirstPage);
$('results').addEventListener('click', onResultsClick);
$('close-event').addEventListener('click', onCloseEvent);
$('summary-form').addEventListener('submit', onSummary);
$('verify').addEventListener('click', onVerify);
$('export-form').addEventListener('submit', onExport);
