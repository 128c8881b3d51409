// Drives the compliance console in headless Chromium, as an officer would: checks how the page
// is served, signs in with a wrong secret and then the right one (by keyboard), filters
// denials, opens one, downloads a CSV export (and refuses one cut short), pages through all events, waits for the access
// token to expire and draws the chart (the page must request a new token), runs a
// verification, and saves a screenshot. Run by tests/browser/main.rs:
//   node tests/browser/console.mjs <gateway-url> <client-id> <client-secret> <token-ttl-secs> <artifacts-dir>
// Prints one JSON line with what it saw (main.rs compares it with the API); exits non-zero on
// any failure.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, withBrowser } from './chromium.mjs';

const [base, clientId, secret, ttl, artifacts] = process.argv.slice(2);
if (!base || !clientId || !secret || !ttl || !artifacts) {
  console.error('usage: console.mjs <gateway-url> <client-id> <client-secret> <token-ttl-secs> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const TIMEOUT = 20_000;
const result = {};

// How each file is served.
result.served = {};
for (const path of ['/console', '/console/console.js', '/console/console.css']) {
  const response = await fetch(`${base}${path}`);
  result.served[path] = {
    status: response.status,
    content_type: response.headers.get('content-type'),
    cache_control: response.headers.get('cache-control'),
    csp: response.headers.get('content-security-policy'),
    nosniff: response.headers.get('x-content-type-options'),
  };
}

/** Waits until `shown` is displayed or `error` (a role="alert" element) says something; fails
 * with the alert's text. */
async function settled(page, shown, error) {
  await page.waitForFunction(([shown, error]) => {
    const element = document.querySelector(shown);
    return (element && element.getClientRects().length > 0)
      || document.querySelector(error).textContent !== '';
  }, [shown, error]);
  const alert = (await page.textContent(error)).trim();
  check(alert === '', `${error}: ${alert}`);
}

/** Numbers of the position column of the results table, in order. */
async function tablePositions(page) {
  return page.$$eval('#results tbody tr', (rows) => rows.map((row) => Number(row.dataset.position)));
}

/** Submits the search form and waits for its answer. */
async function search(page) {
  const answered = page.waitForResponse((response) => response.url().includes('/v1/audit/events?'));
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await answered;
  await page.waitForFunction(() => document.querySelector('#results-status').textContent !== ''
    || document.querySelector('#search-error').textContent !== '');
  const alert = (await page.textContent('#search-error')).trim();
  check(alert === '', `search: ${alert}`);
}

/** Records in a CSV text (RFC 4180: line breaks inside quotes do not end a record). */
function csvRecords(text) {
  let records = 0;
  let quoted = false;
  let empty = true;
  for (const char of text) {
    if (char === '"') quoted = !quoted;
    if (char === '\n' && !quoted) {
      if (!empty) records += 1;
      empty = true;
    } else if (char !== '\r') {
      empty = false;
    }
  }
  return records + (empty ? 0 : 1);
}

await withBrowser({ locale: 'en-GB', acceptDownloads: true, viewport: { width: 1280, height: 1000 } }, async (page) => {
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on('console', (message) => {
    // Failed responses (the wrong secret's 401) are expected; anything else is a problem.
    const expected = /^Failed to load resource/.test(message.text());
    if ((message.type() === 'error' && !expected) || /Content Security Policy/i.test(message.text())) {
      problems.push(message.text());
    }
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  let tokensIssued = 0;
  page.on('response', (response) => {
    if (new URL(response.url()).pathname === '/oauth/token' && response.status() === 200) tokensIssued += 1;
  });

  await page.goto(`${base}/console`);
  result.lang = await page.getAttribute('html', 'lang');
  result.inline_scripts = await page.locator('script:not([src])').count();
  result.inline_styles = await page.locator('style, [style]').count();
  // Every form control has a label.
  result.unlabelled = await page.$$eval('input, select, textarea', (controls) => controls
    .filter((control) => control.type !== 'hidden' && control.labels.length === 0 && !control.getAttribute('aria-label'))
    .map((control) => control.id || control.name));

  // Keyboard: skip link first, then the client id.
  await page.keyboard.press('Tab');
  result.first_focus = await page.evaluate(() => document.activeElement?.className ?? null);
  result.focus_outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  await page.keyboard.press('Tab');
  result.second_focus = await page.evaluate(() => document.activeElement?.id ?? null);

  // A wrong secret: the gateway's reason, in an alert.
  await page.keyboard.type(clientId);
  await page.keyboard.press('Tab');
  await page.keyboard.type(`${secret}-wrong`);
  await page.keyboard.press('Enter');
  const alert = page.locator('#sign-in-error[role="alert"]');
  await page.waitForFunction(() => document.querySelector('#sign-in-error').textContent !== '');
  result.wrong_secret_alert = (await alert.textContent()).trim();
  result.signed_in_after_wrong_secret = await page.locator('#workspace').isVisible();

  // The right secret, by keyboard (the wrong one is selected: typing replaces it).
  await page.focus('#client-secret');
  await page.keyboard.press('Control+A');
  await page.keyboard.type(secret);
  await page.keyboard.press('Enter');
  await page.locator('#workspace').waitFor({ state: 'visible' });
  result.session_status = (await page.textContent('#session-status')).trim();
  result.secret_field_cleared = (await page.inputValue('#client-secret')) === '';

  // Denials only.
  await page.getByLabel('Decision', { exact: true }).selectOption('deny');
  await search(page);
  result.deny_positions = await tablePositions(page);
  result.deny_decisions = await page.$$eval('#results tbody tr td:nth-child(4)', (cells) => cells.map((cell) => cell.textContent));
  result.deny_purposes = await page.$$eval('#results tbody tr td:nth-child(5)', (cells) => cells.map((cell) => cell.textContent));
  check(result.deny_positions.length > 0, 'no denials listed');

  // Open the first denial.
  const opened = result.deny_positions[0];
  await page.getByRole('button', { name: `Open event ${opened}` }).click();
  await settled(page, '#event-body', '#event-error');
  result.event_heading = (await page.textContent('#event-heading')).trim();
  result.event_position = (await page.textContent('#event-fields dd[data-field="position"]')).trim();
  result.event_hash = (await page.textContent('#event-fields dd[data-field="hash"]')).trim();
  result.event_decision = (await page.textContent('#event-fields dd[data-field="decision"]')).trim();
  result.inclusion_position = (await page.textContent('#event-inclusion dd[data-field="position"]')).trim();
  result.inclusion_hash = (await page.textContent('#event-inclusion dd[data-field="hash"]')).trim();
  result.inclusion_prev_hash = (await page.textContent('#event-inclusion dd[data-field="prev_hash"]')).trim();
  result.inclusion_canonical = (await page.textContent('#event-inclusion dd[data-field="canonical"]')).trim();
  result.inclusion_verify = (await page.textContent('#event-inclusion dd[data-field="verify"]')).trim();
  result.event_focused = await page.evaluate(() => document.activeElement?.id ?? null);

  // A CSV export of the denials, downloaded through the page.
  await page.getByLabel('Export format', { exact: true }).selectOption('csv');
  const downloading = page.waitForEvent('download');
  downloading.catch(() => {}); // an alert below says why when there is none
  await page.getByRole('button', { name: 'Download export' }).click();
  await settled(page, '#export-status:not(:empty)', '#search-error');
  const download = await downloading;
  const saved = join(artifacts, 'console-export.csv');
  await download.saveAs(saved);
  result.export_name = download.suggestedFilename();
  const csv = readFileSync(saved, 'utf8');
  result.export_header = csv.split(/\r?\n/, 1)[0];
  const lines = csv.split(/\r?\n/).filter((line) => line !== '');
  result.export_trailer = lines[lines.length - 1];
  result.export_rows = csvRecords(csv) - 2; // the header and the trailer
  result.export_status = (await page.textContent('#export-status')).trim();

  // The same export cut short on its way (a connection that dropped): the page says so and
  // saves nothing. The gateway's answer is fetched for real; only its last line is dropped.
  await page.route('**/v1/audit/export?*', async (route) => {
    const response = await route.fetch();
    const text = await response.text();
    const cut = text.slice(0, text.trimEnd().lastIndexOf('\n') + 1);
    await route.fulfill({ response, body: cut });
  });
  let downloads = 0;
  const counting = () => { downloads += 1; };
  page.on('download', counting);
  await page.getByRole('button', { name: 'Download export' }).click();
  await page.waitForFunction(() => document.querySelector('#search-error').textContent !== '');
  result.cut_export_error = (await page.textContent('#search-error')).trim();
  result.cut_export_status = (await page.textContent('#export-status')).trim();
  result.cut_export_downloads = downloads;
  page.off('download', counting);
  await page.unroute('**/v1/audit/export?*');
  await page.evaluate(() => { document.querySelector('#search-error').textContent = ''; });

  // Every event, ten a page: the first two pages.
  await page.getByLabel('Decision', { exact: true }).selectOption('');
  await page.getByLabel('Events per page', { exact: true }).selectOption('10');
  await search(page);
  result.page1_positions = await tablePositions(page);
  const next = page.getByRole('button', { name: 'Next page' });
  check(await next.isVisible(), 'no "Next page" after a full page');
  const answered = page.waitForResponse((response) => response.url().includes('after='));
  await next.click();
  await answered;
  await page.waitForFunction(() => document.querySelector('#results-status').textContent.startsWith('Page 2'));
  result.page2_positions = await tablePositions(page);

  // Outlive the access token: the chart's request needs a new one.
  result.tokens_before_expiry = tokensIssued;
  await page.waitForTimeout(Number(ttl) * 1000 + 1000);
  await page.getByRole('button', { name: 'Show chart' }).click();
  await settled(page, '#chart', '#summary-error');
  result.tokens_after_expiry = tokensIssued;
  result.chart_bars = await page.$$eval('#chart-svg svg rect.bar', (bars) => bars.map((bar) => ({
    purpose: bar.dataset.purpose,
    day: bar.dataset.day,
    decision: bar.dataset.decision,
    count: Number(bar.dataset.count),
  })));
  result.chart_legend = await page.$$eval('#chart-legend li', (items) => items.map((item) => item.textContent.trim()));
  result.chart_table_rows = await page.$$eval('#chart-table tbody tr', (rows) => rows.map((row) => [...row.cells].map((cell) => cell.textContent)));
  // Out of sight, yet rendered (not display: none), so screen readers read it.
  result.chart_table_hidden = await page.$eval('#chart-data', (data) => {
    const box = data.getBoundingClientRect();
    return data.getClientRects().length > 0 && box.width <= 1 && box.height <= 1;
  });

  // Verification.
  await page.getByRole('button', { name: 'Run verification' }).click();
  await settled(page, '#verify-result[data-ok]', '#verify-error');
  result.verify_ok = await page.getAttribute('#verify-result', 'data-ok');
  result.verify_text = (await page.textContent('#verify-result')).trim();

  // Nothing kept beyond the page's memory.
  result.stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  result.problems = problems;
  await page.screenshot({ path: join(artifacts, 'console.png'), fullPage: true });
});

console.log(JSON.stringify(result));
