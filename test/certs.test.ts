// npm run certs (scripts/certs.ts), run as a process: what it writes, the extensions a TLS peer
// checks, key modes, and that a second run keeps what is still right.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCertsScript } from './harness/certs.js';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const DAY_MS = 86_400_000;

describe('npm run certs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hcp-certs-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const read = (f: string) => readFileSync(join(dir, f));
  const cert = (f: string) => new X509Certificate(read(f));

  it('makes a CA, a server certificate with the SANs asked for, and client certificates named for their sites', () => {
    const out = runCertsScript(['--out', dir, '--san', 'cp.example.com', '--san', '10.1.2.3', '--client', 'texas-1']);
    const ca = cert('ca.pem');
    const server = cert('server.pem');
    const client = cert('clients/texas-1.pem');
    expect(ca.ca).toBe(true);
    expect(ca.checkIssued(ca)).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.subjectAltName!.split(', ')).toEqual(expect.arrayContaining(['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1', 'DNS:control-plane', 'DNS:cp.example.com', 'IP Address:10.1.2.3']));
    expect(server.keyUsage).toEqual([SERVER_AUTH]);
    expect(Date.parse(server.validTo) - Date.parse(server.validFrom)).toBeLessThanOrEqual(825 * DAY_MS);
    expect(server.publicKey.asymmetricKeyDetails).toMatchObject({ namedCurve: 'prime256v1' });
    expect(client.subject).toContain('CN=texas-1');
    expect(client.keyUsage).toEqual([CLIENT_AUTH]);
    expect(client.checkIssued(ca) && client.verify(ca.publicKey)).toBe(true);
    for (const key of ['ca.key', 'server.key', 'clients/texas-1.key']) expect(statSync(join(dir, key)).mode & 0o777).toBe(0o600);
    // it says what to set
    expect(out).toContain(`HCP_TLS_CERT=${join(dir, 'server.pem')}`);
    expect(out).toContain(`--ca-file ${join(dir, 'ca.pem')}`);
  });

  it('keeps the CA and what is still right on a second run, and reissues a broken certificate from the same CA', () => {
    const before = { ca: read('ca.pem'), server: read('server.pem'), client: read('clients/texas-1.pem') };
    writeFileSync(join(dir, 'server.pem'), 'not a certificate');
    const out = runCertsScript(['--out', dir]);
    expect(read('ca.pem').equals(before.ca)).toBe(true);
    expect(read('clients/texas-1.pem').equals(before.client)).toBe(true);
    const server = cert('server.pem');
    expect(server.raw.equals(new X509Certificate(before.server).raw)).toBe(false);
    expect(server.checkIssued(cert('ca.pem'))).toBe(true);
    expect(out).toMatch(/kept .*ca\.pem/);
    expect(out).toMatch(/wrote .*server\.pem.*unreadable/);
  });

  it('makes a new CA with --force and reissues every certificate from it', () => {
    const oldCa = read('ca.pem');
    runCertsScript(['--out', dir, '--force']);
    const ca = cert('ca.pem');
    expect(ca.raw.equals(new X509Certificate(oldCa).raw)).toBe(false);
    expect(cert('server.pem').verify(ca.publicKey)).toBe(true);
    expect(cert('clients/texas-1.pem').verify(ca.publicKey)).toBe(true);
  });

  it('refuses bad arguments, naming them', () => {
    let err: { status?: number; stderr?: string } = {};
    try {
      runCertsScript(['--out', dir, '--client', 'Texas_1']);
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.status).toBe(2);
    expect(err.stderr).toContain('--client "Texas_1"');
    expect(runCertsScript(['--help'])).toContain('--client SITE');
  });
});
