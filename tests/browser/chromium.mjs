// Shared by the browser tests' scripts (consent.mjs, console.mjs): headless Chromium with a
// throwaway profile, and a failing check that says what it expected.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Runs `work(page)` in a fresh headless Chromium; `options` go to the browser context. */
export async function withBrowser(options, work) {
  const profile = mkdtempSync(join(tmpdir(), 'bankgate-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 900, height: 1000 },
    ...options,
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    return await work(page);
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}
