// Drives the person's connected-apps page in headless Chromium, without JavaScript, as a person
// would: picks their bank on /me, signs in there (the sandbox bank approves at once), lands on
// the page, reads the consents it lists, withdraws one, and reads the page again. Then the page
// in French. Run by tests/browser/connected.rs:
//   node tests/browser/connected.mjs <gateway-base> <bank-name> <consent-to-withdraw> <artifacts-dir>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, withBrowser } from './chromium.mjs';

const [base, bankName, withdraw, artifacts] = process.argv.slice(2);
if (!base || !bankName || !withdraw || !artifacts) {
  console.error('usage: connected.mjs <gateway-base> <bank-name> <consent-id> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

const NO_SCRIPT = { javaScriptEnabled: false };
const result = {};

/** From /me, through the bank, to the page (the callback's page moves on by itself). */
async function signIn(page) {
  await page.goto(`${base}/me`);
  result.banks = await page.locator('#banks a').allTextContents();
  await page.getByRole('link', { name: bankName }).click();
  try {
    await page.waitForSelector('#sign-out', { timeout: 5000 });
    result.moved_on = 'by itself';
  } catch {
    await page.click('#continue');
    await page.waitForSelector('#sign-out');
    result.moved_on = 'by the link';
  }
}

/** What the page lists: one entry per consent card. */
async function cards(page) {
  return page.$$eval('section.card', (sections) => sections.map((section) => ({
    consent: section.dataset.consent,
    platform: section.querySelector('.platform')?.textContent.trim(),
    purpose: section.querySelector('.purpose')?.textContent.trim(),
    data: section.querySelector('.data')?.textContent.trim(),
    status: section.querySelector('.status')?.textContent.trim(),
    last_access: section.querySelector('.last-access')?.textContent.trim(),
    accesses: section.querySelector('.accesses summary')?.textContent.trim(),
    can_withdraw: section.querySelector('button.revoke') !== null,
  })));
}

await withBrowser({ ...NO_SCRIPT, locale: 'en-GB' }, async (page) => {
  await signIn(page);
  result.url = page.url();
  result.lang = await page.getAttribute('html', 'lang');
  result.heading = (await page.textContent('h1')).trim();
  result.scripts = await page.locator('script').count();
  result.before = await cards(page);
  await page.screenshot({ path: join(artifacts, 'connected-apps.png'), fullPage: true });

  const button = page.locator(`section[data-consent="${withdraw}"] button.revoke`);
  check(await button.count() === 1, `no withdraw button for ${withdraw}`);
  await button.click();
  await page.waitForSelector('#notice');
  result.notice = (await page.textContent('#notice')).trim();
  result.after = await cards(page);
  await page.screenshot({ path: join(artifacts, 'connected-apps-withdrawn.png'), fullPage: true });

  await page.click('#sign-out');
  await page.waitForSelector('#banks');
  result.signed_out_url = page.url();
});

await withBrowser({ ...NO_SCRIPT, locale: 'fr-FR' }, async (page) => {
  await signIn(page);
  result.lang_fr = await page.getAttribute('html', 'lang');
  result.heading_fr = (await page.textContent('h1')).trim();
  result.cards_fr = await cards(page);
});

console.log(JSON.stringify(result));
