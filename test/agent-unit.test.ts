// deploy/systemd/hcp-agent.service, the unit a site runs dist/hcp-agent under: systemd accepts
// it as written, its example settings are all options the agent knows, and the binary started
// as the unit starts it (its environment, its command line, the credential as a file in
// $CREDENTIALS_DIRECTORY) reports its miners and stops cleanly on SIGTERM.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AgentConfigSchema, envName, parseAgentArgs } from '../agent/config.js';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { bearer, makeKey } from './harness/auth.js';
import { describePg } from './harness/pg.js';
import { startBinary, startControlPlaneProcess, type Proc } from './harness/processes.js';
import { AGENT_UNIT, envFile, serviceSection, unitCommand, unitEnvironment } from './harness/systemd-unit.js';
import { waitFor } from './harness/wait-for.js';

/** a site of its own, made by its credential */
const SITE = 'unit-1';
const TOKEN_RE = /^hcp_/;

it('systemd reads the unit with no complaint', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hcp-unit-'));
  writeFileSync(join(dir, 'token'), 'hcp_x', { mode: 0o600 });
  // the binary where this checkout builds it (verify checks that ExecStart is executable)
  const unit = join(dir, 'hcp-agent.service');
  writeFileSync(unit, serviceText().replaceAll('/usr/local/bin/hcp-agent', AGENT_BINARY).replaceAll('/etc/hcp-agent/token', join(dir, 'token')));
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  // verify exits 0 on an unknown key or a bad value too, saying so on stderr
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
});

it('the example settings are options the agent knows, and a whole configuration with the credential file', () => {
  const example = envFile();
  const known = new Set(Object.keys(AgentConfigSchema.shape).map(envName));
  expect(Object.keys(example).filter((k) => !known.has(k))).toEqual([]);
  const dir = mkdtempSync(join(tmpdir(), 'hcp-unit-'));
  writeFileSync(join(dir, 'token'), 'hcp_0123456789abcdefghijKLMN\n', { mode: 0o600 });
  const argv = unitCommand({ CREDENTIALS_DIRECTORY: dir }).slice(1);
  const parsed = parseAgentArgs(argv, { ...example, ...unitEnvironment() });
  expect('config' in parsed && parsed.config).toMatchObject({
    site: example.HCP_AGENT_SITE, asicDriver: 'cgminer', stateDir: '/var/lib/hcp-agent', token: 'hcp_0123456789abcdefghijKLMN',
  });
  // the unit keeps the credential off the command line and out of the environment
  expect(serviceText()).not.toMatch(/HCP_AGENT_TOKEN=/);
  expect(argv.join(' ')).not.toMatch(TOKEN_RE);
});

describePg('the binary as the unit runs it', (pg) => {
  let cp: Awaited<ReturnType<typeof startControlPlaneProcess>> | undefined;
  let agent: Proc | undefined;
  beforeAll(async () => {
    cp = await startControlPlaneProcess(pg.url);
  });
  afterAll(async () => {
    await agent?.kill('SIGKILL');
    await cp?.proc.kill('SIGTERM');
  });

  it('reports its miners with the credential from $CREDENTIALS_DIRECTORY, and exits 0 on SIGTERM within TimeoutStopSec', async () => {
    const creds = mkdtempSync(join(tmpdir(), 'hcp-unit-creds-'));
    writeFileSync(join(creds, 'token'), `${await makeKey(cp!.http, { role: 'agent', site: SITE })}\n`, { mode: 0o400 });
    const operator = await makeKey(cp!.http, { role: 'viewer', name: 'unit-test' });
    const [, ...args] = unitCommand({ CREDENTIALS_DIRECTORY: creds });
    // the unit's environment, with this machine's state dir and the example's settings pointed at
    // this control plane and simulated miners (no real ones here)
    const env: Record<string, string | undefined> = {
      ...Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('HCP_AGENT_')).map((k) => [k, undefined])),
      ...envFile(), ...unitEnvironment(), PATH: '',
      HCP_AGENT_STATE_DIR: mkdtempSync(join(tmpdir(), 'hcp-unit-state-')), HCP_AGENT_SITE: SITE, HCP_AGENT_CONTROL_PLANE: cp!.grpc,
      HCP_AGENT_MQTT: cp!.mqtt, HCP_AGENT_CA_FILE: undefined, HCP_AGENT_ASIC_DRIVER: 'sim', HCP_AGENT_ASIC_ENDPOINTS: undefined,
      HCP_AGENT_SIM_ASICS: '4', HCP_AGENT_SAMPLE_INTERVAL_MS: '500', HCP_AGENT_SIM_STARTUP_S: '1', HCP_AGENT_HTTP_HOST: '127.0.0.1', HCP_AGENT_HTTP_PORT: '0',
    };
    agent = startBinary('hcp-agent-unit', AGENT_BINARY, args, env);
    await waitFor(async () => {
      const r = await fetch(`${cp!.http}/api/v1/devices?site=${SITE}&kind=asic`, { headers: bearer(operator) });
      const { devices } = (await r.json()) as { devices: Array<{ online: boolean; latest: unknown }> };
      return devices.length === 4 && devices.every((d) => d.online && d.latest);
    }, { timeoutMs: 30_000, message: `${SITE}'s 4 ASICs reporting` });
    const stopSec = Number(serviceSection().get('TimeoutStopSec')?.[0]);
    const t0 = Date.now();
    const { code } = await agent.kill('SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(stopSec * 1000);
  });
});

function serviceText(): string {
  return readFileSync(AGENT_UNIT, 'utf8');
}
