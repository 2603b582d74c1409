// REST over https: the REST app served by listenHttp with a certificate from `npm run certs`,
// asked over loopback by node:https trusting that CA (and by one that does not).
import { request } from 'node:https';
import type { ServerType } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { listenHttp } from '../control-plane/http/listen.js';
import { Registry } from '../control-plane/registry/registry.js';
import { makeTestCerts, type TestCerts } from './harness/certs.js';
import { testHttpApp } from './harness/http-app.js';

function get(url: string, ca?: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('REST over https', () => {
  let certs: TestCerts;
  let db: Db;
  const servers: ServerType[] = [];
  let port: number;

  beforeAll(async () => {
    certs = makeTestCerts();
    db = await createDb({ dataDir: ':memory:' });
    const app = testHttpApp({ registry: new Registry({ staleAfterMs: 10_000 }), db });
    const l = await listenHttp(app.fetch, '127.0.0.1', 0, { cert: certs.serverCert, key: certs.serverKey });
    servers.push(l.server);
    port = l.port;
  });
  afterAll(async () => {
    for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
    await db?.close();
    certs?.remove();
  });

  it('answers GET /health to a client trusting the CA, by name and by address', async () => {
    for (const host of ['localhost', '127.0.0.1']) {
      const r = await get(`https://${host}:${port}/health`, certs.ca);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual({ status: 'ok' });
    }
  });

  it('is refused by a client that does not trust the CA', async () => {
    await expect(get(`https://localhost:${port}/health`)).rejects.toMatchObject({ code: expect.stringMatching(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/) });
  });

  it('does not speak plain http on that port', async () => {
    await expect(fetch(`http://127.0.0.1:${port}/health`).then((r) => r.status)).rejects.toThrow();
  });
});
