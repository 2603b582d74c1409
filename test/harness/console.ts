// The web console in a real browser, for tests: the real `npm start` (scripts/start.ts: control
// plane, three simulated sites, the market and grid feeds) as a child process with a data dir and
// ports of its own, and Debian's Chromium driven by playwright-core. One npm start per test file
// (startConsoleStack in beforeAll), a browser page per test, a sign-in helper, and a screenshot of
// each page visited into docs/screenshots/ (web/README.md shows how to write a test).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort } from './ports.js';
import { ROOT, startTs, type Proc } from './processes.js';

export const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

/** Debian's Chromium (apt-get install chromium): the binary itself, not the /usr/bin shell wrapper */
export function chromiumPath(): string {
  const candidates = [process.env.HCP_CHROMIUM, '/usr/lib/chromium/chromium', '/usr/bin/chromium'].filter(Boolean) as string[];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error('Chromium is not installed: apt-get install -y chromium (or set HCP_CHROMIUM)');
  return found;
}

export interface ConsoleStack {
  /** http://127.0.0.1:<port> */
  base: string;
  /** the admin key npm start made (data/admin.key) */
  adminKey: string;
  dataDir: string;
  /** mqtt://127.0.0.1:<port>, the embedded broker (log in as 'feeds' with feedsKey to publish readings) */
  mqttUrl: string;
  /** the feed key npm start made (data/feeds.token) */
  feedsKey: string;
  proc: Proc;
  browser: Browser;
  /** a fresh browser context and page (its own sessionStorage), 1280×900 */
  newPage(): Promise<Page>;
  /** the pid of npm start's control plane (a child of npm start), e.g. to freeze it (SIGSTOP) */
  controlPlanePid(): number;
  /** makes a key through the API with the admin key */
  makeKey(k: { role: 'admin' | 'operator' | 'customer' | 'viewer'; name: string; customer_id?: string }): Promise<string>;
  stop(): Promise<void>;
}

/** `npm start` on free ports in a temp data dir, waited for until every site is online, and a browser */
export async function startConsoleStack(env: Record<string, string> = {}): Promise<ConsoleStack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'hcp-console-'));
  const [http, grpc, mqtt] = [await freePort(), await freePort(), await freePort()];
  const proc = startTs('npm-start', 'scripts/start.ts', [], {
    HCP_DATA_DIR: dataDir, HCP_HTTP_PORT: String(http), HCP_GRPC_PORT: String(grpc), HCP_MQTT_PORT: String(mqtt),
    // the embedded database in the data dir, whatever the test runner's environment says
    DATABASE_URL: undefined, HCP_ADMIN_KEY: undefined,
    ...env,
  } as Record<string, string | undefined>);
  let browser: Browser | null = null;
  try {
    await proc.waitForLog((l) => l.raw === 'HCP is running.', 'npm start: HCP is running', 150_000);
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'] });
  } catch (err) {
    await proc.kill('SIGTERM');
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const base = `http://127.0.0.1:${http}`;
  const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
  const b = browser;
  return {
    base, adminKey, dataDir, proc, browser: b,
    mqttUrl: `mqtt://127.0.0.1:${mqtt}`,
    feedsKey: readFileSync(join(dataDir, 'feeds.token'), 'utf8').trim(),
    async newPage() {
      const ctx = await b.newContext({ viewport: { width: 1280, height: 900 }, baseURL: base });
      const page = await ctx.newPage();
      page.on('pageerror', (err) => console.error(`[browser] ${err.message}`));
      return page;
    },
    controlPlanePid() {
      const pid = proc.child.pid!;
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      const cp = children.find((c) => readFileSync(`/proc/${c}/cmdline`, 'utf8').includes('control-plane/main.ts'));
      if (!cp) throw new Error(`npm start (pid ${pid}) has no control plane child`);
      return cp;
    },
    async makeKey(k) {
      const r = await fetch(`${base}/api/v1/keys`, { method: 'POST', headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' }, body: JSON.stringify(k) });
      if (r.status !== 201) throw new Error(`POST /api/v1/keys: ${r.status} ${await r.text()}`);
      return ((await r.json()) as { secret: string }).secret;
    },
    async stop() {
      await b.close().catch(() => {});
      // SIGTERM: npm start stops its agents, feeds and control plane before it exits
      await proc.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** opens the console and signs in with key; resolves once the shell (whoami) shows */
export async function signIn(page: Page, key: string, path = '/'): Promise<void> {
  await page.goto(path);
  await page.getByTestId('key').fill(key);
  await page.getByTestId('signin').click();
  await page.getByTestId('whoami').waitFor({ timeout: 15_000 });
}

/** a full-page screenshot into docs/screenshots/<name>.png (linked from the README) */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
