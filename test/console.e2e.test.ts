// The web console in Chromium against the real `npm start` (test/harness/console.ts): sign-in,
// the fleet page with its three sites and charts, and a control carried out live on the site page.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatMarketCsv } from '../sim-hardware/market-csv.js';
import { marketTicks } from '../sim-hardware/market.js';
import { screenshot, signIn, startConsoleStack, type ConsoleStack } from './harness/console.js';

describe('web console', () => {
  let stack: ConsoleStack;
  beforeAll(async () => {
    // heartbeats every second: a frozen control plane's stream is found silent in 2.5 s
    stack = await startConsoleStack({ HCP_EVENTS_HEARTBEAT_MS: '1000' });
  }, 180_000);
  afterAll(async () => {
    await stack?.stop();
  }, 60_000);

  it('a wrong key on the sign-in page shows a clear message', async () => {
    const page = await stack.newPage();
    await page.goto('/');
    await page.getByTestId('key').fill('hcp_this-key-was-never-issued-0000000000');
    await page.getByTestId('signin').click();
    const error = page.getByTestId('signin-error');
    await error.waitFor({ timeout: 10_000 });
    expect(await error.textContent()).toMatch(/refused.*unknown, revoked or expired/);
    // still the sign-in page, not a blank one, and the key was not kept
    expect(await page.getByTestId('key').isVisible()).toBe(true);
    expect(await page.evaluate(() => sessionStorage.getItem('hcp.key'))).toBeNull();
    await screenshot(page, 'signin-wrong-key');
    await page.getByTestId('key').fill('not a key');
    await page.getByTestId('signin').click();
    await page.getByText('That is not an HCP API key').waitFor({ timeout: 5000 });
    await page.context().close();
  }, 60_000);

  it('the fleet page shows three sites with non-empty charts', async () => {
    const page = await stack.newPage();
    await signIn(page, stack.adminKey);
    await page.getByTestId('fleet-page').waitFor();
    for (const site of ['texas-1', 'texas-2', 'canada-1']) await page.getByTestId(`site-card-${site}`).waitFor();
    expect(await page.locator('[data-testid^="site-card-"]').count()).toBe(3);
    // every chart has points (history from the telemetry endpoint, then the live summaries) and a canvas
    for (const id of ['chart-fleet-power', 'chart-site-texas-1', 'chart-site-texas-2', 'chart-site-canada-1']) {
      await page.waitForFunction((tid) => Number(document.querySelector(`[data-testid="${tid}"]`)?.getAttribute('data-points') ?? 0) >= 2, id, { timeout: 20_000 });
      expect(await page.getByTestId(id).locator('canvas').count()).toBe(1);
    }
    expect(await page.getByTestId('live-status').textContent()).toBe('live');
    await page.getByTestId('grid-table').getByText('ercot').waitFor();
    // each site's decision and why (the engine decides every 10 s under npm start), and its break-even
    for (const site of ['texas-1', 'texas-2', 'canada-1']) {
      await page.waitForFunction((s) => !/no decision yet/.test(document.querySelector(`[data-testid="decision-${s}"]`)?.textContent ?? 'no decision yet'), site, { timeout: 30_000 });
      await page.waitForFunction((s) => /break-even .*\$/.test(document.querySelector(`[data-testid="site-card-${s}"]`)?.textContent ?? ''), site, { timeout: 30_000 });
    }
    await screenshot(page, 'fleet');
    await page.context().close();
  }, 90_000);

  it('the economics page explains each site\'s decisions, scores them against always-on and the strike rule, and runs a backtest', async () => {
    const page = await stack.newPage();
    await signIn(page, stack.adminKey, '/economics');
    await page.getByTestId('economics-page').waitFor();
    expect(await page.getByRole('link', { name: 'Economics' }).count()).toBe(1);
    // the last decision of each site with its explanation: the rule, what it decided and the break-evens it used
    for (const site of ['texas-1', 'texas-2', 'canada-1']) {
      await page.waitForFunction((s) => /ASICs mining/.test(document.querySelector(`[data-testid="econ-explanation-${s}"]`)?.textContent ?? ''), site, { timeout: 30_000 });
      expect(await page.getByTestId(`econ-models-${site}`).textContent()).toMatch(/s21.*\$0\.\d{4}\/kWh/);
    }
    await page.locator('[data-testid="decision-row"]').filter({ hasText: /ASICs mining/ }).first().waitFor({ timeout: 30_000 });
    // profit as decided over the last hour: read again as new decisions come (every 10 s under npm start)
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="profit-chart"]')?.getAttribute('data-points') ?? 0) >= 2, null, { timeout: 40_000 });
    expect(await page.getByTestId('profit-totals').textContent()).toMatch(/all sites/);

    await page.getByTestId('bt-seed').fill('1');
    await page.getByTestId('bt-hours').fill('24');
    await page.getByTestId('bt-run').click();
    await page.getByTestId('backtest-summary').waitFor({ timeout: 30_000 });
    for (const id of ['backtest-chart', 'backtest-price-chart', 'backtest-kw-chart']) {
      expect(Number(await page.getByTestId(id).getAttribute('data-points'))).toBe(24);
      expect(await page.getByTestId(id).locator('canvas').count()).toBe(1);
    }
    const dollars = async (id: string) => Number((await page.getByTestId(id).textContent())!.replace(/[$,]/g, ''));
    const [hcp, alwaysOn, strike, optimum] = await Promise.all(['bt-profit-hcp', 'bt-profit-always_on', 'bt-profit-strike', 'bt-profit-optimum'].map(dollars));
    // every strategy is at or below the perfect-foresight optimum (backtest.test.ts), and on seed 1
    // over this day HCP beats always-on and the strike rule (backtest.test.ts runs the same day)
    for (const v of [hcp, alwaysOn, strike]) expect(v).toBeLessThanOrEqual(optimum!);
    expect(hcp).toBeGreaterThan(alwaysOn!);
    expect(hcp).toBeGreaterThan(strike!);
    await screenshot(page, 'economics');
    // uploaded prices: a bad file is refused naming its line, a good one is run for the site it prices
    await page.getByTestId('bt-source-csv').check();
    await page.getByTestId('bt-file').setInputFiles({ name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from('ts,feed,site,price\n2026-01-05T00:00:00Z,power,ohio-2,cheap\n') });
    await page.getByTestId('bt-run').click();
    await page.getByTestId('bt-error').getByText(/line 2: price "cheap" is not a number/).waitFor({ timeout: 30_000 });
    const start = Date.parse('2026-01-05T00:00:00Z');
    const csv = formatMarketCsv(marketTicks({ seed: 7, startMs: start, sites: [{ id: 'ohio-2', utcOffsetHours: -5 }] }, start + 3 * 3600_000));
    await page.getByTestId('bt-file').setInputFiles({ name: 'ohio.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
    await page.getByTestId('bt-run').click();
    await page.getByTestId('bt-basis').getByText(/^ohio-2: .* 3 h from/).waitFor({ timeout: 30_000 });
    expect(Number(await page.getByTestId('backtest-chart').getAttribute('data-points'))).toBe(3);
    await page.context().close();
  }, 120_000);

  it("clicking texas-1's mining off and confirming shows its ASICs asleep on the page within 10 s with no reload", async () => {
    const page = await stack.newPage();
    await signIn(page, stack.adminKey);
    await page.getByTestId('site-card-texas-1').getByRole('link', { name: /Texas 1|texas-1/ }).click();
    await page.getByTestId('site-page').waitFor();
    await page.waitForFunction(() => /^([1-9]\d*) \/ 50$/.test(document.querySelector('[data-testid="asics-hashing"]')?.textContent ?? ''), null, { timeout: 30_000 });
    // a mark on the window: a reload would lose it
    await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));
    await page.getByTestId('mining-off').click();
    await page.getByTestId('confirm-dialog').waitFor();
    await screenshot(page, 'site-confirm');
    await page.getByTestId('confirm-ok').click();
    await page.waitForFunction(() => document.querySelector('[data-testid="asics-asleep"]')?.textContent === '50 / 50', null, { timeout: 10_000 }).catch(async (err) => {
      await page.screenshot({ path: join(tmpdir(), 'hcp-console-site-failed.png'), fullPage: true });
      throw new Error(`${(err as Error).message}; the page: ${join(tmpdir(), 'hcp-console-site-failed.png')}; shown: ${await page.getByTestId('asics-asleep').textContent()}`);
    });
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
    expect(await page.locator('[data-testid="device-grid"] [data-state="sleeping"]').count()).toBe(50);
    await page.getByTestId('claims').getByText('operator').first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'site');
    // a device: its series and its commands
    await page.getByTestId('device-asic-texas-1-00001').click();
    await page.getByTestId('device-page').waitFor();
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-device-power"]')?.getAttribute('data-points') ?? 0) >= 2, null, { timeout: 15_000 });
    // the command that put it to sleep, with why
    await page.getByTestId('device-commands').getByText('mining off by key:bootstrap-admin').first().waitFor({ timeout: 10_000 });
    await screenshot(page, 'device');
    await page.context().close();
  }, 120_000);

  it('a lost live stream reconnects on its own, saying "reconnecting" meanwhile', async () => {
    const page = await stack.newPage();
    await signIn(page, stack.adminKey);
    const status = page.getByTestId('live-status');
    await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent === 'live', null, { timeout: 15_000 });
    // the control plane frozen: its stream goes silent (no heartbeat), the page gives it up and
    // retries; thawed, it answers the retry
    const cp = stack.controlPlanePid();
    process.kill(cp, 'SIGSTOP');
    try {
      await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent === 'reconnecting…', null, { timeout: 15_000 });
      await screenshot(page, 'fleet-reconnecting');
    } finally {
      process.kill(cp, 'SIGCONT');
    }
    await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent === 'live', null, { timeout: 20_000 });
    expect(await status.textContent()).toBe('live');
    await page.context().close();
  }, 60_000);

  it('a viewer sees a site without its controls, and a customer is told it may not see the fleet', async () => {
    const viewerKey = await stack.makeKey({ role: 'viewer', name: 'console-viewer' });
    const page = await stack.newPage();
    await signIn(page, viewerKey, '/sites/texas-2');
    await page.getByTestId('site-page').waitFor();
    expect(await page.getByTestId('controls').count()).toBe(0);
    expect(await page.getByTestId('mining-off').count()).toBe(0);
    // a customer may not see the fleet at all: the page says so
    const customerKey = await stack.makeKey({ role: 'customer', name: 'console-customer', customer_id: 'cust-001' });
    const c = await stack.newPage();
    await signIn(c, customerKey, '/sites/texas-2');
    await c.getByText('may not see this page').waitFor();
    expect(await c.getByTestId('nav-fleet').count()).toBe(0);
    await page.context().close();
    await c.context().close();
  }, 60_000);
  it('a customer key sees only its own workloads, submits one from the page and sees it move live', async () => {
    const admin = { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' };
    const submitFor = async (customer: string) => {
      const res = await fetch(`${stack.base}/api/v1/workloads`, {
        method: 'POST', headers: admin,
        body: JSON.stringify({ customer_id: customer, workload_type: 'ai_inference_batch', priority: 3, requirements: { gpu_type: 'h100', gpu_count: 1 } }),
      });
      expect(res.status).toBe(201);
      return ((await res.json()) as { id: string }).id;
    };
    const theirs = await submitFor('cust-002');
    const ours = await submitFor('cust-001');
    const key = await stack.makeKey({ role: 'customer', name: 'console-workloads-customer', customer_id: 'cust-001' });
    const page = await stack.newPage();
    // signed in at /, a customer is taken to the first page it may see
    await signIn(page, key, '/');
    await page.getByTestId('workloads-page').waitFor();
    await page.locator(`[data-workload="${ours}"]`).waitFor();
    const customers = await page.getByTestId('workload-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-customer')));
    expect(customers.length).toBeGreaterThan(0);
    expect(new Set(customers)).toEqual(new Set(['cust-001']));
    expect(await page.locator(`[data-workload="${theirs}"]`).count()).toBe(0);
    expect(await page.getByTestId('submit-customer').count()).toBe(0);

    // a submit from the page: it shows in the list, then placed on a site without a reload
    const before = await page.getByTestId('workload-row').count();
    await page.getByTestId('workload-submit').getByRole('button', { name: 'Submit' }).click();
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid="workload-row"]').length > n, before);
    await page.getByTestId('workload-detail').waitFor();
    const id = await page.getByTestId('workload-detail').locator('h3').textContent();
    const row = page.locator(`[data-workload="${id}"]`);
    await page.waitForFunction((wid) => {
      const cells = document.querySelector(`[data-workload="${wid}"]`)?.querySelectorAll('td');
      return !!cells && ['running', 'scheduled'].includes(cells[6]!.textContent ?? '') && (cells[7]!.textContent ?? '–') !== '–';
    }, id, { timeout: 20_000 });
    expect(await row.getAttribute('data-customer')).toBe('cust-001');
    await page.getByTestId('workload-detail').getByText('Placement: gpu-').waitFor();
    await screenshot(page, 'workloads');

    // the operator's view has both customers
    const op = await stack.newPage();
    await signIn(op, stack.adminKey, '/workloads');
    await op.locator(`[data-workload="${theirs}"]`).waitFor();
    await op.locator(`[data-workload="${ours}"]`).waitFor();
    await page.context().close();
    await op.context().close();
  }, 90_000);

  it("the Commands page shows texas-2's mining off live with its reason and its audit entry, and a site filter hides them", async () => {
    const admin = { authorization: `Bearer ${stack.adminKey}`, 'content-type': 'application/json' };
    const page = await stack.newPage();
    await signIn(page, stack.adminKey, '/commands');
    await page.getByTestId('commands-page').waitFor();
    await page.getByTestId('commands-table').waitFor();
    await page.getByTestId('audit-table').waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="live-status"]')?.textContent === 'live', null, { timeout: 15_000 });
    // a mark on the window: a reload would lose it
    await page.evaluate(() => ((window as unknown as { __noReload: boolean }).__noReload = true));

    // from the API: texas-2's ASICs the other way from where they are (the engine may have put
    // them to sleep), so the reconciler sends commands for the operator's claim
    const reason = `commands page test ${Date.now()}`;
    type Answer = { claim: { id: string }; commands: Array<{ id: string; site: string; details: { reason: string } }> };
    const mining = async (enabled: boolean) => {
      const res = await fetch(`${stack.base}/api/v1/sites/texas-2/mining`, { method: 'POST', headers: admin, body: JSON.stringify({ enabled, reason }) });
      expect([200, 202]).toContain(res.status);
      return (await res.json()) as Answer;
    };
    let answer = await mining(false);
    if (answer.commands.length === 0) answer = await mining(true);
    expect(answer.commands.length).toBeGreaterThan(0);
    const cmd = answer.commands[0]!;
    expect(cmd.details.reason).toBe(reason);

    // the command shows with its reason, and moves to its outcome, with no reload
    const row = page.locator(`[data-testid="command-row"][data-command="${cmd.id}"]`);
    await row.waitFor({ timeout: 10_000 });
    expect(await row.textContent()).toContain(reason);
    expect(await row.getAttribute('data-site')).toBe('texas-2');
    await page.waitForFunction((id) => document.querySelector(`[data-command="${id}"]`)?.getAttribute('data-state') === 'succeeded', cmd.id, { timeout: 20_000 });
    // the audit log: the claim as the key that set it, with the reason, and the command submitted
    const claimEntry = page.locator(`[data-testid="audit-row"][data-action="claim.set"][data-subject="${answer.claim.id}"]`);
    await claimEntry.waitFor({ timeout: 10_000 });
    expect(await claimEntry.textContent()).toContain('key:bootstrap-admin');
    expect(await claimEntry.textContent()).toContain(reason);
    await page.locator(`[data-testid="audit-row"][data-action="command.submitted"][data-subject="${cmd.id}"]`).waitFor({ timeout: 10_000 });
    expect(await page.evaluate(() => (window as unknown as { __noReload?: boolean }).__noReload)).toBe(true);
    await screenshot(page, 'commands');

    // kind and actor filters: allocations only hides the mining command; the admin's entries keep
    // the claim and drop the reconciler's; cleared, both are back
    await page.getByTestId('filter-kind').selectOption('allocate');
    await row.waitFor({ state: 'detached', timeout: 10_000 });
    await page.getByTestId('filter-kind').selectOption('');
    await row.waitFor({ timeout: 10_000 });
    const submitted = page.locator(`[data-testid="audit-row"][data-action="command.submitted"][data-subject="${cmd.id}"]`);
    await page.getByTestId('filter-actor').fill('key:bootstrap-admin');
    // the list renders again before Enter (a new entry, heard live): what is typed stays typed
    const key = await fetch(`${stack.base}/api/v1/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ role: 'viewer', name: 'typed-filter-probe' }) });
    expect(key.status).toBe(201);
    const { id: keyId } = (await key.json()) as { id: string };
    await page.locator(`[data-testid="audit-row"][data-action="key.created"][data-subject="${keyId}"]`).waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('filter-actor').inputValue()).toBe('key:bootstrap-admin');
    await page.getByTestId('filter-actor').press('Enter');
    await submitted.waitFor({ state: 'detached', timeout: 10_000 });
    await claimEntry.waitFor();
    await page.getByTestId('filter-actor').fill('');
    await page.getByTestId('filter-actor').press('Enter');
    await submitted.waitFor({ timeout: 10_000 });
    // the API's refusal is shown: from after to
    await page.getByTestId('filter-from').fill('2030-01-02T00:00');
    await page.getByTestId('filter-to').fill('2030-01-01T00:00');
    expect(await page.getByTestId('audit-error').textContent({ timeout: 10_000 })).toMatch(/from: must not be after to/);
    await page.getByTestId('filter-from').fill('');
    await page.getByTestId('filter-to').fill('');
    await claimEntry.waitFor({ timeout: 10_000 });
    expect(await page.getByTestId('audit-error').count()).toBe(0);

    // filtered to canada-1: neither shows, every command row is canada-1's, and the address says so
    await page.getByTestId('filter-site').selectOption('canada-1');
    await page.waitForFunction(([id, claim]) => !document.querySelector(`[data-command="${id}"]`) && !document.querySelector(`[data-testid="audit-row"][data-subject="${claim}"]`), [cmd.id, answer.claim.id], { timeout: 10_000 });
    const sites = await page.getByTestId('command-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-site')));
    expect(sites.filter((s) => s !== 'canada-1')).toEqual([]);
    expect(new URL(page.url()).searchParams.get('site')).toBe('canada-1');
    expect(await page.getByTestId('filter-site').inputValue()).toBe('canada-1');

    // the kind filter is the API's: texas-2's set_mining commands hold it, its allocations do not
    const list = async (q: string) => ((await (await fetch(`${stack.base}/api/v1/commands?${q}`, { headers: admin })).json()) as { commands: Array<{ id: string }> }).commands.map((c) => c.id);
    expect(await list('site=texas-2&type=set_mining')).toContain(cmd.id);
    expect(await list('site=texas-2&type=allocate')).not.toContain(cmd.id);

    // "Older" pages back with the cursor: texas-2 has more entries than a page of 3 (its agent's
    // key, hello and online, then the claim and its commands)
    const paged = await stack.newPage();
    await signIn(paged, stack.adminKey, '/commands?site=texas-2&audit_limit=3');
    await paged.getByTestId('audit-older').waitFor({ timeout: 10_000 });
    expect(await paged.getByTestId('audit-row').count()).toBe(3);
    await paged.getByTestId('audit-older').click();
    await paged.waitForFunction(() => document.querySelectorAll('[data-testid="audit-row"]').length > 3, null, { timeout: 10_000 });
    const ids = await paged.getByTestId('audit-row').evaluateAll((rows) => rows.map((r) => Number(r.getAttribute('data-audit'))));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeLessThanOrEqual(6);
    await paged.context().close();
    await page.context().close();
  }, 90_000);

  // last: the trip holds every Texas ASIC off until the frequency has held and the stages ran
  it('59.6 Hz published on ercot appears on the grid-events page with each Texas agent\'s trip in ms', async () => {
    const page = await stack.newPage();
    await signIn(page, stack.adminKey, '/grid');
    await page.getByTestId('grid-page').waitFor();
    expect(await page.getByTestId('phase-ercot').textContent()).toBe('normal');
    // the feeds' login, as mosquitto_pub would publish it
    const feed = await mqtt.connectAsync(stack.mqttUrl, { username: 'feeds', password: stack.feedsKey, reconnectPeriod: 0 });
    try {
      await feed.publishAsync('hcp/v1/grid/ercot/frequency', JSON.stringify({ ts: new Date().toISOString(), hz: 59.6 }), { qos: 1 });
    } finally {
      await feed.endAsync();
    }
    // the newest event is ercot's, from this reading, with both Texas agents' own trips
    const event = page.getByTestId('grid-event-0');
    await event.waitFor({ timeout: 15_000 });
    expect(await event.getAttribute('data-region')).toBe('ercot');
    for (const site of ['texas-1', 'texas-2']) {
      const row = event.getByTestId(`trip-${site}`);
      await row.waitFor({ timeout: 15_000 });
      expect(await row.locator('td').nth(1).textContent()).toBe('59.600 Hz');
      expect(await event.getByTestId(`trip-ms-${site}`).textContent()).toMatch(/^\d+ ms$/);
      // 50 ASICs per site, each drawing kilowatts before the trip
      expect(await row.locator('td').nth(3).textContent()).toBe('50');
      expect(Number.parseFloat((await row.locator('td').nth(4).textContent())!)).toBeGreaterThan(0);
    }
    expect(await event.getByTestId('trip-canada-1').count()).toBe(0);
    // the control plane's own curtail of the region, on the event's timeline, and the phase live
    await event.getByText('every ASIC of texas-1, texas-2 off').waitFor({ timeout: 15_000 });
    await page.waitForFunction(() => document.querySelector('[data-testid="phase-ercot"]')?.textContent !== 'normal');
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-frequency-ercot"]')?.getAttribute('data-points')) > 1);
    await screenshot(page, 'grid-events');
    await page.context().close();
  }, 90_000);
});
