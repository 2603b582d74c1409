import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AntminerWebSession } from './antminer-web-client.js';

// A miner web server in raw TCP, so the test decides exactly when a kept-alive connection dies.
const CONF = JSON.stringify({ 'miner-mode': 0, pools: [] });
const reply = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${CONF.length}\r\nConnection: keep-alive\r\n\r\n${CONF}`;
let server: net.Server;
let connections = 0;
const open = new Set<net.Socket>();
/** the first connection answers one request, then drops at the next: a miner closing an idle socket as we reuse it */
beforeAll(async () => {
  server = net.createServer((sock) => {
    const n = ++connections;
    open.add(sock);
    sock.on('close', () => open.delete(sock));
    let served = 0;
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      while (buf.includes('\r\n\r\n')) {
        buf = buf.slice(buf.indexOf('\r\n\r\n') + 4);
        if (n === 1 && served === 1) return sock.resetAndDestroy();
        served++;
        sock.write(reply);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});
afterAll(async () => {
  for (const s of open) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('Antminer web session', () => {
  it('sends a request again, once, on a new connection when a kept-alive one is reset under it', async () => {
    const s = new AntminerWebSession({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, user: 'root', password: 'root', timeoutMs: 2000 });
    expect(await s.getConf()).toEqual({ 'miner-mode': 0, pools: [] });
    expect(await s.getConf()).toEqual({ 'miner-mode': 0, pools: [] });
    expect(connections).toBe(2);
    expect(s.requests).toBe(2);
  });
});
