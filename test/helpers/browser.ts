import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { onTestFinished } from 'vitest';

export const CHROMIUM_PATH = '/usr/bin/chromium';
const ARTIFACTS_DIR = path.resolve('test-artifacts');
const WEB_DIR = path.resolve('web');
const DIST_INDEX = path.join(WEB_DIR, 'dist', 'index.html');
const BUILD_LOCK = path.join(WEB_DIR, '.build-lock');

/** Resolves true when Chromium can run; in CI a missing one is an error naming what to install. */
export function chromiumAvailable(): boolean {
  if (existsSync(CHROMIUM_PATH)) return true;
  const hint = `${CHROMIUM_PATH} is missing: install Debian's chromium (apt-get install chromium) to run the browser tests.`;
  if (process.env.CI === 'true') throw new Error(hint);
  console.warn(`skipping browser tests: ${hint}`);
  return false;
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * Runs `npm run build` when web/dist is missing or older than web/'s sources. Test files run
 * in parallel workers, so one builds under a lock folder while the others wait for it.
 */
export async function ensureWebBuilt(timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = existsSync(DIST_INDEX) && statSync(DIST_INDEX).mtimeMs >= newestSource(WEB_DIR);
    if (fresh) return;
    try {
      mkdirSync(BUILD_LOCK);
    } catch {
      if (Date.now() > deadline) throw new Error(`web build lock ${BUILD_LOCK} held for too long; remove it`);
      await new Promise((resolve) => setTimeout(resolve, 250));
      continue;
    }
    try {
      execFileSync('npm', ['run', 'build'], { stdio: 'pipe' });
    } finally {
      rmdirSync(BUILD_LOCK);
    }
    return;
  }
}

export async function launchBrowser(): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  onTestFinished(() => browser.close());
  return browser;
}

/** A page that fails the test on uncaught page errors, sized like a laptop unless told otherwise. */
export async function openPage(
  browser: Browser,
  url: string,
  viewport = { width: 1280, height: 860 },
): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(url);
  return { page, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const file = path.join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
