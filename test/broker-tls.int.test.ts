// The embedded broker's mqtts listener with a certificate made here by openssl: TLS only (no
// plain listener unless asked), and mutual TLS refusing a client without a certificate.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { collect, KEYS, startBroker, type TestBroker } from './harness/mqtt-broker.js';
import { waitFor } from './harness/wait-for.js';

const run = promisify(execFile);

interface Pki {
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

/** a CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA */
function makePki(dir: string): Pki {
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=hcp test ca', '-days', '1');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=hcp test ${who}`);
    ssl('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '1', '-extfile', `${who}.ext`);
  }
  const read = (f: string) => readFileSync(join(dir, f));
  return { ca: read('ca.crt'), serverCert: read('server.crt'), serverKey: read('server.key'), clientCert: read('client.crt'), clientKey: read('client.key') };
}

describe('embedded broker: mqtts', () => {
  let dir: string;
  let pki: Pki;
  let b: TestBroker;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'hcp-broker-tls-'));
    pki = makePki(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => b.close());

  it('serves mqtts only when TLS is on, and both when asked', async () => {
    b = await startBroker({ tls: { cert: pki.serverCert, key: pki.serverKey, port: 0 } });
    expect(b.broker.port).toBeUndefined();
    expect(b.broker.tlsPort).toBeGreaterThan(0);
    const url = `mqtts://127.0.0.1:${b.broker.tlsPort}`;
    const reader = await mqtt.connectAsync(url, { ca: pki.ca, username: KEYS.viewer.username, password: KEYS.viewer.secret, reconnectPeriod: 0 }, false);
    const { got } = await collect(reader, 'hcp/v1/sites/+/telemetry');
    const agent = await mqtt.connectAsync(url, { ca: pki.ca, username: KEYS.texas1.username, password: KEYS.texas1.secret, reconnectPeriod: 0 }, false);
    await agent.publishAsync('hcp/v1/sites/texas-1/telemetry', 'over tls', { qos: 1 });
    await waitFor(() => got.length === 1, { message: 'the batch over mqtts' });
    // and from mosquitto_pub, checking the certificate against the CA (async: the broker is in this process)
    await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.broker.tlsPort), '--cafile', join(dir, 'ca.crt'), '-u', KEYS.texas1.username, '-P', KEYS.texas1.secret, '-q', '1', '-t', 'hcp/v1/sites/texas-1/telemetry', '-m', 'from mosquitto']);
    await waitFor(() => got.length === 2, { message: 'the batch from mosquitto_pub' });
    // the logins are checked on mqtts as on mqtt
    await expect(mqtt.connectAsync(url, { ca: pki.ca, username: KEYS.viewer.username, password: 'wrong', reconnectPeriod: 0 }, false)).rejects.toMatchObject({ code: 4 });
    await Promise.all([reader.endAsync(), agent.endAsync()]);
    await b.close();

    b = await startBroker({ plain: true, tls: { cert: pki.serverCert, key: pki.serverKey, port: 0 } });
    expect(b.broker.port).toBeGreaterThan(0);
    expect(b.broker.tlsPort).toBeGreaterThan(0);
    expect(await b.connackCode(KEYS.viewer)).toBe(0);
  });

  it('with a client CA, refuses a client without a certificate and takes one with', async () => {
    b = await startBroker({ tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.ca, port: 0 } });
    const url = `mqtts://127.0.0.1:${b.broker.tlsPort}`;
    const login = { username: KEYS.viewer.username, password: KEYS.viewer.secret, reconnectPeriod: 0 };
    await expect(mqtt.connectAsync(url, { ca: pki.ca, ...login }, false)).rejects.toThrow();
    await waitFor(() => b.counter('hcp_broker_refused_connections_total', { reason: 'tls' }), { message: 'the refused handshake counted' });
    expect(b.broker.clients()).toBe(0);
    // a certificate the CA did not sign is refused too
    const selfSigned = join(dir, 'stranger');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${selfSigned}.key`, '-out', `${selfSigned}.crt`, '-subj', '/CN=stranger', '-days', '1'], { stdio: 'pipe' });
    await expect(mqtt.connectAsync(url, { ca: pki.ca, cert: readFileSync(`${selfSigned}.crt`), key: readFileSync(`${selfSigned}.key`), ...login }, false)).rejects.toThrow();
    await waitFor(async () => (await b.counter('hcp_broker_refused_connections_total', { reason: 'tls' })) === 2);

    const c = await mqtt.connectAsync(url, { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, ...login }, false);
    expect(c.connected).toBe(true);
    await c.endAsync();
  });
});
