import net from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AntminerWebError, AntminerWebSession } from './antminer-web-client.js';

// A miner web server in raw TCP, so the test decides exactly when a kept-alive connection dies:
// on its first connection it answers one request, and at the next one it either resets at once
// (a miner closing an idle socket as we reuse it) or after the first bytes of a reply.
const CONF = JSON.stringify({ 'miner-mode': 0, pools: [] });
const reply = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${CONF.length}\r\nConnection: keep-alive\r\n\r\n${CONF}`;
let server: net.Server;
let dropAt: 'before_reply' | 'mid_reply' = 'before_reply';
let connections = 0;
let requests = 0;
const open = new Set<net.Socket>();
// A new server (a new port) per test, so no pooled socket of one test reaches the next.
beforeEach(async () => {
  connections = 0;
  requests = 0;
  server = net.createServer((sock) => {
    const n = ++connections;
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let served = 0;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      // requests end at the blank line; a POST body follows, sized by Content-Length
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        buf = buf.slice(end + 4 + len);
        requests++;
        if (n === 1 && served === 1) {
          if (dropAt === 'mid_reply') sock.write(reply.slice(0, 60));
          return void setImmediate(() => sock.resetAndDestroy());
        }
        served++;
        sock.write(reply);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterEach(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const session = () =>
  new AntminerWebSession({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, user: 'root', password: 'root', timeoutMs: 2000 });

describe('Antminer web session', () => {
  it('sends a request again, once, on a new connection when a kept-alive one is reset before any reply', async () => {
    dropAt = 'before_reply';
    const s = session();
    expect(await s.getConf()).toEqual({ 'miner-mode': 0, pools: [] });
    expect(await s.getConf()).toEqual({ 'miner-mode': 0, pools: [] });
    expect(connections).toBe(2);
    expect([requests, s.requests]).toEqual([3, 3]);
  });

  it('never sends a conf write twice: a reset after the reply has begun is an error', async () => {
    dropAt = 'mid_reply';
    const s = session();
    await expect(s.getConf()).resolves.toBeTruthy();
    const err = await s.setConf({ 'miner-mode': 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AntminerWebError);
    expect((err as AntminerWebError).code).toBe('network');
    expect([requests, s.requests, connections]).toEqual([2, 2, 1]);
  });
});
