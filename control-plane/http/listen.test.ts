// What Node's HTTP parser refuses before a route sees it is answered with the API's JSON error body.
import { connect } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { listenHttp } from './listen.js';

let close: () => void;
let port: number;

beforeAll(async () => {
  const l = await listenHttp(() => new Response('{}', { headers: { 'content-type': 'application/json' } }), '127.0.0.1', 0);
  port = l.port;
  close = () => l.server.close();
});
afterAll(() => close());

/** the raw answer to raw bytes */
const exchange = (bytes: string) =>
  new Promise<string>((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => s.end(bytes));
    let got = '';
    s.on('data', (c) => (got += c.toString()));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });

const split = (raw: string) => {
  const [head, body] = raw.split('\r\n\r\n');
  return { status: Number(head!.split(' ')[1]), head: head!, body: JSON.parse(body!) as { error: Record<string, string> } };
};

it('answers headers past the limit 431 with the error body', async () => {
  const r = split(await exchange(`GET / HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(20_000)}\r\n\r\n`));
  expect(r.status).toBe(431);
  expect(r.head).toMatch(/content-type: application\/json/i);
  expect(r.body.error).toMatchObject({ code: 'invalid_argument', reason: 'headers_too_large' });
  expect(typeof r.body.error.message).toBe('string');
});

it('answers a HEAD with headers past the limit 431 without a body', async () => {
  const raw = await exchange(`HEAD / HTTP/1.1\r\nHost: x\r\nX-Huge: ${'h'.repeat(20_000)}\r\n\r\n`);
  expect(raw).toMatch(/^HTTP\/1.1 431 /);
  expect(raw.endsWith('\r\n\r\n')).toBe(true);
});

it('answers a malformed request 400 with the error body', async () => {
  const r = split(await exchange('GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'));
  expect(r.status).toBe(400);
  expect(r.body.error).toMatchObject({ code: 'invalid_argument', reason: 'malformed_request' });
});

it('answers a path the adaptor cannot read (a backslash, a bad Host) 400 with the error body', async () => {
  for (const req of ['GET /a\\b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'GET / HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n']) {
    const r = split(await exchange(req));
    expect(r.status, req).toBe(400);
    expect(r.body.error, req).toMatchObject({ code: 'invalid_argument', reason: 'malformed_request' });
  }
});

it('still answers a good request', async () => {
  expect(await exchange('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1.1 200/);
});
