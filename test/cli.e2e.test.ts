// The hcp CLI end to end: `node cli/hcp.mjs` (package.json's bin) run as a child process against
// the control plane as a process on real PostgreSQL, with two site agents simulating H100s and
// S21s. Status and lists as JSON, a workload submitted with --wait until it runs (and queued
// behind another first), mining off and a curtail with --wait changing the desired state, `top`
// on a real pseudo-terminal, keys, the config file, and every refusal: a bad flag is exit 2 with
// the usage, a wrong key or a forbidden call exit 1 with the API's message. The key in use never
// appears in anything the CLI prints.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, makeKey, TEST_ADMIN_KEY } from './harness/auth.js';
import { describePg } from './harness/pg.js';
import { freePort } from './harness/ports.js';
import { ROOT, startControlPlaneProcess, startTs, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';

const SITES = ['texas-1', 'texas-2'] as const;
const GPUS = 3;
const ASICS = 2;

interface Run { code: number | null; stdout: string; stderr: string }
interface Background { child: ChildProcess; stdout(): string; stderr(): string; done: Promise<Run> }

/** every secret the CLI was given in this file: none may ever be printed */
const secrets = new Set<string>([TEST_ADMIN_KEY]);

function launch(args: string[], o: { key?: string | null; env?: Record<string, string | undefined>; url?: string; home: string }): Background {
  const env: Record<string, string | undefined> = { ...process.env, HOME: o.home, XDG_CONFIG_HOME: undefined, HCP_URL: o.url, HCP_API_KEY: o.key ?? undefined, ...o.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, ['cli/hcp.mjs', ...args], { cwd: ROOT, env: env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<Run>((r) => child.once('close', (code) => {
    for (const s of secrets) expect(stdout + stderr, `hcp ${args.join(' ')} printed a key`).not.toContain(s);
    r({ code, stdout, stderr });
  }));
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

describePg('hcp CLI against a control plane and two agents', (pg) => {
  let cp: Proc | undefined;
  const agents: Proc[] = [];
  let http = '';
  let home = '';
  let operator = '';
  let viewer = '';
  const api = () => apiClient(http);
  const hcp = (args: string[], o: { key?: string | null; env?: Record<string, string | undefined>; url?: string } = {}) =>
    launch(args, { key: o.key === undefined ? operator : o.key, url: o.url ?? http, env: o.env, home }).done;
  const json = <T = Record<string, unknown>>(r: Run): T => {
    expect(r.code, r.stderr).toBe(0);
    return JSON.parse(r.stdout) as T;
  };

  beforeAll(async () => {
    home = mkdtempSync(join(tmpdir(), 'hcp-cli-home-'));
    const started = await startControlPlaneProcess(pg.url);
    cp = started.proc;
    http = started.http;
    for (const site of SITES) {
      const token = await makeKey(http, { role: 'agent', site });
      agents.push(startTs(`agent-${site}`, 'agent/main.ts', [
        '--site', site, '--control-plane', started.grpc, '--mqtt', started.mqtt, '--sim-gpus', String(GPUS), '--sim-asics', String(ASICS),
        '--sample-interval-ms', '500', '--sim-startup-s', '2', '--http-port', '0',
      ], { HCP_AGENT_TOKEN: token }));
    }
    operator = await makeKey(http, { role: 'operator', name: 'cli-e2e' });
    viewer = await makeKey(http, { role: 'viewer', name: 'cli-viewer' });
    secrets.add(operator).add(viewer);
    await waitFor(async () => {
      const s = await api().json<{ sites: Array<{ id: string; online: boolean; gpus_online: number; asics_mining: number }> }>('/api/v1/status');
      return SITES.every((id) => s.sites.some((x) => x.id === id && x.online && x.gpus_online === GPUS && x.asics_mining === ASICS));
    }, { timeoutMs: 60_000, intervalMs: 250, message: 'both sites online with every GPU and every S21 mining' });
  }, 90_000);

  afterAll(async () => {
    for (const a of agents) await a.kill('SIGKILL');
    await cp?.kill('SIGTERM');
    if (home) rmSync(home, { recursive: true, force: true });
  });

  it('status --json is the API\'s status, with both sites; without --json a table of them', async () => {
    const s = json<{ sites: Array<{ id: string; online: boolean; gpus: number; asics: number }>; fleet: { sites_online: number } }>(await hcp(['status', '--json']));
    expect(s.sites.filter((x) => (SITES as readonly string[]).includes(x.id))).toEqual(SITES.map((id) => expect.objectContaining({ id, online: true, gpus: GPUS, asics: ASICS })));
    expect(s.fleet.sites_online).toBeGreaterThanOrEqual(2);
    const t = await hcp(['status']);
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/^SITE\s+REGION\s+ONLINE\s+POWER_KW/m);
    for (const id of SITES) expect(t.stdout).toMatch(new RegExp(`^${id}\\s+\\S+\\s+yes\\s`, 'm'));
    // the same through npx, as a fresh clone runs it
    const viaNpx = await new Promise<Run>((r) => {
      const c = spawn('npx', ['--no-install', 'hcp', 'status', '--json'], { cwd: ROOT, env: { ...process.env, HOME: home, HCP_URL: http, HCP_API_KEY: operator }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (b: Buffer) => (out += b.toString()));
      c.stderr.on('data', (b: Buffer) => (err += b.toString()));
      c.once('close', (code) => r({ code, stdout: out, stderr: err }));
    });
    expect(json<{ sites: Array<{ id: string }> }>(viaNpx).sites.map((x) => x.id)).toEqual(expect.arrayContaining([...SITES]));
  });

  it('list commands print valid JSON with --json; --all follows every page', async () => {
    const sites = json<{ sites: Array<{ id: string }>; count: number }>(await hcp(['sites', '--json']));
    expect(sites.sites.map((s) => s.id)).toEqual(expect.arrayContaining([...SITES]));
    const gpus = json<{ devices: Array<{ id: string; kind: string; site: string }> }>(await hcp(['devices', '--site', 'texas-1', '--kind', 'gpu', '--json']));
    expect(gpus.devices).toHaveLength(GPUS);
    expect(gpus.devices.every((d) => d.kind === 'gpu' && d.site === 'texas-1')).toBe(true);
    // pages of 2 over 2 × (3 + 2) devices, joined
    const paged = json<{ devices: Array<{ id: string }>; next_cursor: string | null; count: number }>(await hcp(['devices', '--limit', '2', '--all', '--json']));
    expect(paged.devices).toHaveLength(SITES.length * (GPUS + ASICS));
    expect(new Set(paged.devices.map((d) => d.id)).size).toBe(paged.devices.length);
    expect(paged.next_cursor).toBeNull();
    // a single page says where the next one starts
    const one = await hcp(['devices', '--limit', '2']);
    expect(one.code).toBe(0);
    expect(one.stderr).toMatch(/^2 of 10; next page: hcp devices --limit 2 --cursor \S+ \(or --all\)$/m);
    for (const args of [['workloads', 'list', '--json'], ['commands', 'list', '--json'], ['commands', '--json', '--site', 'texas-1']]) {
      const r = await hcp(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      expect(() => JSON.parse(r.stdout), args.join(' ')).not.toThrow();
    }
    const keys = json<{ keys: Array<{ name: string; role: string }> }>(await hcp(['keys', 'list', '--json'], { key: TEST_ADMIN_KEY }));
    expect(keys.keys).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'cli-e2e', role: 'operator' })]));
    expect(JSON.stringify(keys)).not.toContain('secret');
  });

  it('workloads submit --wait returns once the workload runs on the agent\'s GPUs; a second waits in the queue until the first is cancelled', async () => {
    const r = await hcp(['workloads', 'submit', '--gpus', String(GPUS), '--site', 'texas-1', '--customer', 'cust-001', '--priority', '5', '--wait', '--json']);
    const first = json<{ id: string; state: string; site: string; allocations: Array<{ device_id: string; live: boolean }> }>(r);
    expect(first).toMatchObject({ state: 'running', site: 'texas-1' });
    expect(first.allocations.filter((a) => a.live)).toHaveLength(GPUS);
    expect(r.stderr).toContain(`${first.id}: running at texas-1`);
    // running as the API and the agent's telemetry see it
    expect((await api().json<{ state: string }>(`/api/v1/workloads/${first.id}`)).state).toBe('running');
    await waitFor(async () => {
      const d = await api().json<{ devices: Array<{ latest: { state: string; workload_id: string | null } | null }> }>('/api/v1/devices?site=texas-1&kind=gpu');
      return d.devices.every((g) => g.latest?.state === 'busy' && g.latest.workload_id === first.id);
    }, { timeoutMs: 15_000, message: 'texas-1\'s GPUs busy with the workload' });

    // texas-1 is full and equal priority never evicts: the second waits, and says where it stands
    const second = launch(['workloads', 'submit', '--gpus', String(GPUS), '--site', 'texas-1', '--customer', 'cust-001', '--priority', '5', '--wait'], { key: operator, url: http, home });
    await waitFor(() => /queued, position 1 of 1 pending \(priority 5\)/.test(second.stderr()), { timeoutMs: 20_000, message: `the second queued: ${second.stderr()}` });
    const watch = launch(['workloads', 'watch', first.id, '--json', '--interval', '200'], { key: operator, url: http, home });
    await waitFor(() => watch.stdout().includes('"to":"running"'), { timeoutMs: 15_000, message: 'watch prints the history so far' });

    const cancelled = await hcp(['workloads', 'cancel', first.id]);
    expect(cancelled.code, cancelled.stderr).toBe(0);
    expect(cancelled.stdout).toMatch(new RegExp(`^${first.id}\\s.*\\scancelled\\s`, 'm'));
    const w = await watch.done;
    expect(w.code).toBe(0);
    const history = w.stdout.trim().split('\n').map((l) => JSON.parse(l) as { from: string | null; to: string; site: string | null });
    expect(history.map((h) => [h.from, h.to])).toEqual([['pending', 'scheduled'], ['scheduled', 'running'], ['running', 'cancelled']]);
    expect(history[0]!.site).toBe('texas-1');

    const s = await second.done;
    expect(s.code, s.stderr).toBe(0);
    expect(s.stdout).toMatch(/^state:\s+running$/m);
    expect(s.stdout).toMatch(/^site:\s+texas-1$/m);
    const secondId = /^id:\s+(\S+)$/m.exec(s.stdout)![1]!;
    const got = json<{ id: string; state: string }>(await hcp(['workloads', 'get', secondId, '--json']));
    expect(got).toMatchObject({ id: secondId, state: 'running' });
    expect((await hcp(['workloads', 'cancel', secondId])).code).toBe(0);
  }, 90_000);

  it('mining off --wait puts the site\'s ASICs to sleep by an operator claim in the desired state', async () => {
    const r = await hcp(['mining', 'off', '--site', 'texas-1', '--reason', 'cli e2e', '--wait']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^claim \S+ at texas-1 \(cli e2e\), until released$/m);
    expect(r.stdout).toMatch(/\sset_mining\s+succeeded\s/);
    expect(r.stderr).toMatch(/mining off at texas-1: 1\/1 done/);
    const d = await api().json<{ claims: Array<{ source: string; reason: string; want: { kind: string; enabled: boolean } }>; desired: { mining: number; asleep: number } }>('/api/v1/sites/texas-1/desired');
    expect(d.claims).toEqual([expect.objectContaining({ source: 'operator', reason: 'cli e2e', want: expect.objectContaining({ kind: 'mining', enabled: false }) })]);
    expect(d.desired).toMatchObject({ mining: 0, asleep: ASICS });
    await waitFor(async () => (await api().json<{ asics_mining: number; hashrate_ths: number }>('/api/v1/sites/texas-1')).asics_mining === 0, { timeoutMs: 15_000, message: 'texas-1 not mining' });
  });

  it('curtail --wait --json shows the claims and the commands, every one succeeded', async () => {
    const r = await hcp(['curtail', '--site', 'texas-2', '--reason', 'grid drill', '--duration', '10m', '--wait', '--json']);
    const body = json<{ claims: Array<{ site: string; reason: string; expires_at: string }>; commands: Array<{ site: string; state: string }> }>(r);
    expect(body.claims).toEqual([expect.objectContaining({ site: 'texas-2', reason: 'grid drill' })]);
    expect(Date.parse(body.claims[0]!.expires_at) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(body.commands).toEqual([expect.objectContaining({ site: 'texas-2', state: 'succeeded' })]);
    expect(r.stderr).toMatch(/curtail texas-2: \d\/1 done/);
    const d = await api().json<{ desired: { asleep: number } }>('/api/v1/sites/texas-2/desired');
    expect(d.desired.asleep).toBe(ASICS);
  });

  describe('refusals', () => {
    const closed = 'http://127.0.0.1:9'; // nothing is asked: a bad flag is refused before any request
    it.each([
      [['status', '--bogus'], /Unknown option '--bogus'/, /usage: hcp status/],
      [['frobnicate'], /unknown command: frobnicate/, /usage: hcp <command>/],
      [['workloads', 'launch'], /unknown workloads command: launch/, /usage: hcp <command>/],
      [['workloads', 'get'], /needs ID/, /usage: hcp workloads get ID/],
      [['devices', '--kind', 'tpu'], /--kind must be one of gpu, asic, not "tpu"/, /usage: hcp devices \[ID\]/],
      [['workloads', 'submit', '--gpus', 'many'], /--gpus must be a whole number from 1 to 1024/, /usage: hcp workloads submit/],
      [['curtail', '--reason', 'x'], /name the sites \(--site S, repeatable\) or --all/, /usage: hcp curtail/],
      [['mining', 'off'], /--site is required/, /usage: hcp mining off/],
      [['status', '--url', 'ftp://x'], /--url must be an http:\/\/ or https:\/\/ URL/, /usage: hcp status/],
    ])('hcp %j → exit 2 with the usage', async (args, message, usage) => {
      const r = await hcp(args, { url: closed });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).toMatch(usage);
      expect(r.stdout).toBe('');
    });

    it('--help prints the usage and exits 0', async () => {
      const r = await hcp(['workloads', 'submit', '--help'], { url: closed });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('usage: hcp workloads submit [options]');
      expect(r.stdout).toContain('--wait');
    });

    it('a wrong key is exit 1 with the API\'s message and reason', async () => {
      const r = await hcp(['status'], { key: 'hcp_not-a-real-key-0000000000000000' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('the API key is not valid (unknown or revoked)');
      expect(r.stderr).toContain('HTTP 401, unauthenticated/bad_key');
      expect(r.stdout).toBe('');
      const none = await hcp(['status'], { key: null });
      expect(none.code).toBe(1);
      expect(none.stderr).toContain('unauthenticated/missing_key');
      expect(none.stderr).toContain('HCP_API_KEY');
    });

    it('a role that may not is exit 1 with the API\'s 403, and nothing changes', async () => {
      const r = await hcp(['mining', 'on', '--site', 'texas-1'], { key: viewer });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/role viewer may not \S+ \(key cli-viewer\) \(HTTP 403, permission_denied\/forbidden\)/);
      const d = await api().json<{ claims: Array<{ want: { enabled: boolean } }> }>('/api/v1/sites/texas-1/desired');
      expect(d.claims.map((c) => c.want.enabled)).toEqual([false]);
    });

    it('an API refusal of a value is exit 1 naming the field', async () => {
      const r = await hcp(['workloads', 'submit', '--gpus', '64', '--customer', 'cust-001']);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/requirements\.gpu_count: 64 h100 GPUs can never be placed.*\(HTTP 400, invalid_argument\/exceeds_site_capacity\)/);
      const gone = await hcp(['workloads', 'get', 'no-such-workload']);
      expect(gone.code).toBe(1);
      expect(gone.stderr).toMatch(/HTTP 404, not_found\//);
    });

    it('a control plane that does not answer is exit 1', async () => {
      const r = await hcp(['status'], { url: `http://127.0.0.1:${await freePort()}` });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/cannot reach the control plane at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    });
  });

  it('the config file gives the URL and key; one others can read is warned about', async () => {
    const file = join(home, 'cfg.json');
    writeFileSync(file, JSON.stringify({ url: http, key: operator }));
    chmodSync(file, 0o644);
    const loose = await hcp(['sites', '--json', '--config', file], { key: null, env: { HCP_URL: undefined } });
    expect(json<{ sites: unknown[] }>(loose).sites.length).toBeGreaterThanOrEqual(2);
    expect(loose.stderr).toContain(`warning: the config file ${file} holds a key and is readable by others (mode 0644); run: chmod 600 ${file}`);
    chmodSync(file, 0o600);
    const tight = await hcp(['sites', '--json', '--config', file], { key: null, env: { HCP_URL: undefined } });
    expect(tight.code).toBe(0);
    expect(tight.stderr).toBe('');
    // the default place, ~/.config/hcp/config.json
    const dir = join(home, '.config', 'hcp');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ url: http, key: operator }), { mode: 0o600 });
    expect((await hcp(['status', '--json'], { key: null, env: { HCP_URL: undefined } })).code).toBe(0);
    writeFileSync(file, '{"url": ');
    const broken = await hcp(['status', '--config', file], { key: null });
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain(`the config file ${file} is not JSON`);
  });

  it('keys create prints the new secret once; revoked, it is refused', async () => {
    const r = await hcp(['keys', 'create', '--role', 'viewer', '--name', 'cli-made'], { key: TEST_ADMIN_KEY });
    expect(r.code, r.stderr).toBe(0);
    const secret = r.stdout.trim().split('\n').at(-1)!;
    expect(secret).toMatch(/^hcp_/);
    expect(r.stderr).toContain('the secret is shown this once');
    const id = /^(\S+)\s+cli-made\s+viewer/m.exec(r.stdout)![1]!;
    expect((await hcp(['status', '--json'], { key: secret })).code).toBe(0);
    secrets.add(secret);
    const revoked = await hcp(['keys', 'revoke', id, '--reason', 'done', '--json'], { key: TEST_ADMIN_KEY });
    expect(json<{ id: string; revoked_at: string | null }>(revoked)).toMatchObject({ id, revoked_at: expect.any(String) });
    await waitFor(async () => (await hcp(['status'], { key: secret })).code === 1, { timeoutMs: 10_000, message: 'the revoked key refused' });
    const operatorTries = await hcp(['keys', 'list']);
    expect(operatorTries.code).toBe(1);
    expect(operatorTries.stderr).toContain('HTTP 403');
  });

  it('claims lists the operator claim mining off made; claims release hands the site back', async () => {
    const listed = json<{ claims: Array<{ id: string; source: string; reason: string }> }>(await hcp(['claims', '--site', 'texas-1', '--source', 'operator', '--json']));
    expect(listed.claims).toEqual([expect.objectContaining({ source: 'operator', reason: 'cli e2e' })]);
    const id = listed.claims[0]!.id;
    const table = await hcp(['claims', 'list', '--site', 'texas-1']);
    expect(table.stdout).toMatch(new RegExp(`^${id}\\s+texas-1\\s+operator\\s+mining off\\s+all\\s`, 'm'));
    const r = await hcp(['claims', 'release', id, '--reason', 'cli e2e done']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`released ${id} at texas-1 (mining off)`);
    const d = await api().json<{ claims: Array<{ source: string }> }>('/api/v1/sites/texas-1/desired');
    expect(d.claims.filter((c) => c.source === 'operator')).toEqual([]);
    const again = await hcp(['claims', 'release', id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/HTTP 404, not_found\//);
  });

  it('top draws the fleet on a terminal, redraws, and q gives the terminal back', async () => {
    const once = await hcp(['top', '--once']);
    expect(once.code, once.stderr).toBe(0);
    for (const id of SITES) expect(once.stdout).toMatch(new RegExp(`^${id}\\s+\\S+\\s+yes\\s`, 'm'));

    // script(1) runs it on a pseudo-terminal: stdout and stdin are a TTY, as in a shell
    const cmd = `${JSON.stringify(process.execPath)} cli/hcp.mjs top --interval 200`;
    const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
      cwd: ROOT, env: { ...process.env, HOME: home, HCP_URL: http, HCP_API_KEY: operator, TERM: 'xterm', COLUMNS: '160', LINES: '40' }, stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const frames = () => out.split('hcp top  ').length - 1;
    await waitFor(() => frames() >= 3 && SITES.every((id) => out.includes(id)), { timeoutMs: 20_000, message: `three frames of top: ${JSON.stringify(out.slice(-500))}` });
    expect(out).toContain('\x1b[?1049h'); // the alternate screen
    expect(out).toContain('(q quits)');
    child.stdin.write('q');
    expect(await exited).toBe(0);
    // back on the main screen with the cursor shown, after the last frame
    const tail = out.slice(out.lastIndexOf('hcp top  '));
    expect(tail).toContain('\x1b[?25h\x1b[?1049l');
    expect(out).not.toContain(operator);
  });
});
