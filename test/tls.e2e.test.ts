// The production settings end to end: the control plane as a process with TLS (REST over https,
// gRPC over TLS, the broker on mqtts only) and logins required (no anonymous MQTT), and the
// agent as it ships (dist/hcp-agent) with its site credential in a token file and the CA it
// trusts. Telemetry lands, a curtail reaches the ASICs, and nothing gets in without a key.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AGENT_BINARY } from './harness/agent-binary.js';
import { bearer, TEST_ADMIN_KEY } from './harness/auth.js';
import { makeTestCerts, type TestCerts } from './harness/certs.js';
import { httpsRequest } from './harness/https.js';
import { describePg } from './harness/pg.js';
import { startBinary, startControlPlaneProcess, type Proc } from './harness/processes.js';
import { waitFor } from './harness/wait-for.js';

describePg('production settings: TLS and logins, with the hcp-agent binary', (pg) => {
  let certs: TestCerts;
  let cp: Proc;
  let agent: Proc;
  let sql: postgres.Sql;
  let http = '';
  let grpcPort = '';
  let mqtts = '';
  const api = (path: string, o: { method?: string; key?: string; body?: unknown } = {}) =>
    httpsRequest(`${http}${path}`, { ca: certs.ca, method: o.method, headers: bearer(o.key ?? TEST_ADMIN_KEY), body: o.body });

  beforeAll(async () => {
    certs = makeTestCerts();
    sql = postgres(pg.url, { onnotice: () => {} });
    const ready = await startControlPlaneProcess(pg.url, {
      HCP_TLS_CERT: join(certs.dir, 'server.pem'), HCP_TLS_KEY: join(certs.dir, 'server.key'),
      HCP_MQTT_TLS_PORT: '0', HCP_MQTT_ANONYMOUS: 'off', HCP_ECONOMICS: 'off',
    });
    cp = ready.proc;
    // the server certificate names localhost (npm run certs)
    http = ready.http.replace('127.0.0.1', 'localhost');
    grpcPort = ready.grpc.split(':').pop()!;
    mqtts = ready.mqtt.replace('127.0.0.1', 'localhost');
    expect(http).toMatch(/^https:\/\//);
    expect(mqtts).toMatch(/^mqtts:\/\//);

    const made = await api('/api/v1/keys', { method: 'POST', body: { role: 'agent', site: 'texas-1' } });
    expect(made.status).toBe(201);
    const tokenFile = join(certs.dir, 'texas-1.token');
    writeFileSync(tokenFile, `${made.json().secret}\n`);
    chmodSync(tokenFile, 0o600);
    agent = startBinary('hcp-agent-texas-1', AGENT_BINARY, [
      '--site', 'texas-1', '--control-plane', `localhost:${grpcPort}`, '--mqtt', mqtts, '--ca-file', join(certs.dir, 'ca.pem'),
      '--token-file', tokenFile, '--sim-gpus', '2', '--sim-asics', '3', '--sample-interval-ms', '250', '--sim-startup-s', '2',
    ], { PATH: '' });
  });

  afterAll(async () => {
    await agent?.kill('SIGKILL');
    await cp?.kill('SIGTERM');
    await sql?.end();
    certs?.remove();
  });

  it('the agent connects over TLS with its credential, and its telemetry lands', async () => {
    await waitFor(async () => {
      const s = await api('/api/v1/sites/texas-1');
      return s.status === 200 && s.json().online && s.json().asics_online === 3 && s.json().gpus_online === 2;
    }, { timeoutMs: 30_000, message: 'texas-1 online over TLS' });
    await waitFor(async () => Number((await sql`SELECT count(DISTINCT device_id) AS n FROM asic_telemetry WHERE site_id = 'texas-1'`)[0]!.n) === 3, { message: 'rows for every ASIC' });
    expect(agent.lines.some((l) => /in the clear/.test(String(l.msg)))).toBe(false);
  });

  it('an operator curtails over https and the agent sleeps its ASICs; without a key it is 401', async () => {
    expect((await httpsRequest(`${http}/api/v1/curtail`, { ca: certs.ca, method: 'POST', body: { all: true, reason: 'x' } })).status).toBe(401);
    const op = (await api('/api/v1/keys', { method: 'POST', body: { role: 'operator', name: 'tls-ops' } })).json().secret as string;
    const r = await api('/api/v1/curtail?wait=true', { method: 'POST', key: op, body: { sites: ['texas-1'], reason: 'ERCOT EEA' } });
    expect(r.status).toBe(200);
    expect(r.json().claims[0]).toMatchObject({ source: 'operator', actor: 'key:tls-ops', reason: 'ERCOT EEA' });
    expect(r.json().commands[0]).toMatchObject({ state: 'succeeded', actor: 'system:reconciler', details: { source: 'operator' } });
    await waitFor(async () => {
      const d = (await api('/api/v1/devices?site=texas-1&kind=asic')).json().devices as Array<{ latest: { mining_state: string } | null }>;
      return d.length === 3 && d.every((x) => x.latest?.mining_state === 'sleeping');
    }, { timeoutMs: 10_000, message: 'every ASIC asleep' });
  });

  it('the broker takes no anonymous client and no plaintext, even on loopback', async () => {
    const anon = await mqtt.connectAsync(mqtts, { ca: certs.ca, reconnectPeriod: 0, connectTimeout: 5000 }).then(() => 'connected', (e: Error & { code?: number }) => e.code);
    expect(anon).toBe(5);
    const viewer = (await api('/api/v1/keys', { method: 'POST', body: { role: 'viewer', name: 'tls-viewer' } })).json().secret as string;
    const reader = await mqtt.connectAsync(mqtts, { ca: certs.ca, username: 'tls-viewer', password: viewer, reconnectPeriod: 0 });
    const got = new Promise<string>((resolve) => reader.on('message', (t) => resolve(t)));
    await reader.subscribeAsync('hcp/v1/sites/+/telemetry');
    expect(await got).toBe('hcp/v1/sites/texas-1/telemetry');
    await reader.endAsync();
  });
});
