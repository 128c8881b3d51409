// Drives bankgate's consent screen in headless Chromium, as a person would: reads it, continues
// to the sandbox bank, approves there, and lands back on the platform. Then a second flow in
// French, cancelled on the consent screen. Run by tests/browser/main.rs:
//   node tests/browser/consent.mjs <authorize-url-en> <authorize-url-fr> <artifacts-dir>
// Prints one JSON line with what it saw; exits non-zero on any failure.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { check, withBrowser } from './chromium.mjs';

const [authorizeEn, authorizeFr, artifacts] = process.argv.slice(2);
if (!authorizeEn || !authorizeFr || !artifacts) {
  console.error('usage: consent.mjs <authorize-url-en> <authorize-url-fr> <artifacts-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

// The screens must work without JavaScript.
const NO_SCRIPT = { javaScriptEnabled: false };

const result = {};

// English: approve, at bankgate and at the bank.
await withBrowser({ ...NO_SCRIPT, locale: 'en-GB' }, async (page) => {
  await page.goto(authorizeEn);
  result.lang_en = await page.getAttribute('html', 'lang');
  result.heading_en = (await page.textContent('h1')).trim();
  result.purpose_en = (await page.textContent('#purpose')).trim();
  result.scopes_en = (await page.textContent('#scopes')).trim();
  result.scripts = await page.locator('script').count();
  const approve = page.getByRole('button', { name: /^Continue to / });
  const cancel = page.getByRole('button', { name: 'Cancel' });
  check(await approve.count() === 1, 'no "Continue to <bank>" button');
  check(await cancel.count() === 1, 'no "Cancel" button');
  // Keyboard: the first button is reachable with Tab and has a visible focus style.
  await page.keyboard.press('Tab');
  result.focused = await page.evaluate(() => document.activeElement?.id ?? null);
  await page.screenshot({ path: join(artifacts, 'consent-screen-en.png'), fullPage: true });
  await approve.click();
  // The sandbox bank's own approval page.
  const bankApprove = page.getByRole('button', { name: 'Approve', exact: true });
  await bankApprove.waitFor();
  result.bank_title = await page.title();
  await page.screenshot({ path: join(artifacts, 'bank-approval.png'), fullPage: true });
  await bankApprove.click();
  await page.waitForSelector('#platform-result');
  result.platform_en = (await page.textContent('#platform-result')).trim();
  await page.screenshot({ path: join(artifacts, 'platform-connected.png'), fullPage: true });
});

// French: the same screen, localised; the user cancels.
await withBrowser({ ...NO_SCRIPT, locale: 'fr-FR' }, async (page) => {
  await page.goto(authorizeFr);
  result.lang_fr = await page.getAttribute('html', 'lang');
  result.heading_fr = (await page.textContent('h1')).trim();
  // The purpose in French, from the policy's [text.fr], with no language switch on it.
  result.purpose_fr = (await page.textContent('#purpose')).trim();
  result.purpose_lang_fr = await page.getAttribute('#purpose', 'lang');
  result.description_fr = (await page.textContent('#purpose + p')).trim();
  const approve = page.getByRole('button', { name: /^Continuer vers / });
  check(await approve.count() === 1, 'no "Continuer vers <banque>" button');
  await page.screenshot({ path: join(artifacts, 'consent-screen-fr.png'), fullPage: true });
  await page.getByRole('button', { name: 'Annuler' }).click();
  await page.waitForSelector('#platform-result');
  result.platform_fr = (await page.textContent('#platform-result')).trim();
});

console.log(JSON.stringify(result));
