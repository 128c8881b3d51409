// Drives bankgate's consent screen for a payment in headless Chromium, as a person would: reads
// the payment on it, continues to the sandbox bank, approves the payment there, and lands back
// on the platform, which submits it. Then a second payment in French, cancelled on the consent
// screen. Each screen shows what the payee's bank said of the name typed (verification of
// payee). Run by tests/browser/payment.rs:
//   node tests/browser/payment.mjs <authorize-url-en> <authorize-url-fr> <artifacts-dir>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, withBrowser } from './chromium.mjs';

const [authorizeEn, authorizeFr, artifacts] = process.argv.slice(2);
if (!authorizeEn || !authorizeFr || !artifacts) {
  console.error('usage: payment.mjs <authorize-url-en> <authorize-url-fr> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

// The screens must work without JavaScript.
const NO_SCRIPT = { javaScriptEnabled: false };
const text = async (page, selector) => (await page.textContent(selector)).trim();
const result = {};

// English: approve, at bankgate and at the bank.
await withBrowser({ ...NO_SCRIPT, locale: 'en-GB' }, async (page) => {
  await page.goto(authorizeEn);
  result.lang_en = await page.getAttribute('html', 'lang');
  result.heading_en = await text(page, 'h1');
  result.amount_en = await text(page, '#amount');
  result.payee_en = await text(page, '#payee');
  result.account_en = await text(page, '#payee-account');
  result.check_en = await text(page, '#payee-check');
  result.bank_en = await text(page, '#bank');
  result.purpose_en = await text(page, '#purpose');
  result.scripts = await page.locator('script').count();
  result.body_en = await page.textContent('body');
  const approve = page.getByRole('button', { name: /^Continue to / });
  check(await approve.count() === 1, 'no "Continue to <bank>" button');
  check(await page.getByRole('button', { name: 'Cancel' }).count() === 1, 'no "Cancel" button');
  await page.keyboard.press('Tab');
  result.focused = await page.evaluate(() => document.activeElement?.id ?? null);
  await page.screenshot({ path: join(artifacts, 'payment-screen-en.png'), fullPage: true });
  await approve.click();
  // The sandbox bank's own approval page for the payment.
  const bankApprove = page.getByRole('button', { name: 'Approve', exact: true });
  await bankApprove.waitFor();
  result.bank_page = (await page.textContent('body')).replace(/\s+/g, ' ').trim();
  await page.screenshot({ path: join(artifacts, 'payment-bank-approval.png'), fullPage: true });
  await bankApprove.click();
  await page.waitForSelector('#platform-result');
  result.platform_en = await text(page, '#platform-result');
});

// French: the same payment screen, localised; the user cancels.
await withBrowser({ ...NO_SCRIPT, locale: 'fr-FR' }, async (page) => {
  await page.goto(authorizeFr);
  result.lang_fr = await page.getAttribute('html', 'lang');
  result.heading_fr = await text(page, 'h1');
  result.amount_fr = await text(page, '#amount');
  result.check_fr = await text(page, '#payee-check');
  result.purpose_fr = await text(page, '#purpose');
  result.labels_fr = await page.locator('dt').allTextContents();
  const approve = page.getByRole('button', { name: /^Continuer vers / });
  check(await approve.count() === 1, 'no "Continuer vers <banque>" button');
  await page.screenshot({ path: join(artifacts, 'payment-screen-fr.png'), fullPage: true });
  await page.getByRole('button', { name: 'Annuler' }).click();
  await page.waitForSelector('#platform-result');
  result.platform_fr = await text(page, '#platform-result');
});

console.log(JSON.stringify(result));
