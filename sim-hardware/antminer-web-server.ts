// HTTP server for the Antminer web control endpoint (port 80 on a real miner); the protocol is
// antminer-web.ts. Auth: stock firmware (lighttpd mod_auth) demands HTTP Digest (RFC 7616, MD5,
// qop=auth) as root/root. We demand it too, so a driver that passes here speaks to a real miner;
// Basic with the same credentials is also accepted (some firmware forks use it). `credentials:
// null` turns auth off.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { handleAntminerWebRequest, type AntminerWebMiner } from './antminer-web.js';
import type { CgminerServerLog } from './cgminer-server.js';

/** the realm stock Antminer firmware announces */
export const ANTMINER_REALM = 'antMiner Configuration';
/** a miner conf is well under 4 KB */
const MAX_BODY_BYTES = 64 * 1024;
/** nonces we issued and still accept */
const MAX_NONCES = 1024;

export interface AntminerWebServerOptions {
  miner: AntminerWebMiner;
  host?: string;
  /** 0 = a random free port */
  port: number;
  /** default root/root, as on stock firmware; null = no auth */
  credentials?: { user: string; password: string } | null;
  log?: CgminerServerLog;
  /**
   * How long a nonce is accepted after it was issued; default 10 minutes. A late answer gets a
   * fresh challenge with stale=true, as lighttpd's mod_auth does.
   */
  nonceTtlMs?: number;
  /** how long an idle kept-alive connection stays open; default 5 s (lighttpd's max-keep-alive-idle) */
  keepAliveTimeoutMs?: number;
  /** wall clock for nonce ages (tests); default Date.now */
  now?: () => number;
}

export interface AntminerWebServer {
  readonly host: string;
  readonly port: number;
  /** requests served, and how many of them were answered with a challenge */
  readonly stats: { requests: number; challenged: number };
  /** idempotent; drops open connections */
  close(): Promise<void>;
}

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** `Digest a="b", c=d` → { a: 'b', c: 'd' } (RFC 7235 auth-param list) */
export function parseAuthParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    out[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return out;
}

export async function createAntminerWebServer(opts: AntminerWebServerOptions): Promise<AntminerWebServer> {
  const host = opts.host ?? '127.0.0.1';
  const creds = opts.credentials === undefined ? { user: 'root', password: 'root' } : opts.credentials;
  const nonceTtlMs = opts.nonceTtlMs ?? 600_000;
  const now = opts.now ?? Date.now;
  /** nonce → when it was issued (ms), and the nonce counts already used on it */
  const nonces = new Map<string, { issued: number; used: Set<string> }>();
  const stats = { requests: 0, challenged: 0 };

  /**
   * true: authorized; 'stale': right credentials on an expired nonce; false: refused — wrong
   * credentials, or a nonce count used before on that nonce (a replay, RFC 7616 §3.4)
   */
  function authorized(req: http.IncomingMessage): boolean | 'stale' {
    if (!creds) return true;
    const h = req.headers.authorization ?? '';
    if (/^basic /i.test(h)) return Buffer.from(h.slice(6).trim(), 'base64').toString('utf8') === `${creds.user}:${creds.password}`;
    if (!/^digest /i.test(h)) return false;
    const p = parseAuthParams(h.slice(7));
    const n = p.nonce ? nonces.get(p.nonce) : undefined;
    if (p.username !== creds.user || p.realm !== ANTMINER_REALM || n === undefined || p.uri !== req.url) return false;
    const ha1 = md5(`${creds.user}:${ANTMINER_REALM}:${creds.password}`);
    const ha2 = md5(`${req.method}:${p.uri}`);
    const expected = p.qop ? md5(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`) : md5(`${ha1}:${p.nonce}:${ha2}`);
    if (p.response !== expected) return false;
    if (p.qop) {
      if (!p.nc || n.used.has(p.nc)) return false;
      n.used.add(p.nc);
    }
    if (now() - n.issued > nonceTtlMs) {
      nonces.delete(p.nonce!);
      return 'stale';
    }
    return true;
  }

  function challenge(res: http.ServerResponse, stale: boolean): void {
    stats.challenged++;
    const nonce = randomBytes(16).toString('hex');
    nonces.set(nonce, { issued: now(), used: new Set() });
    if (nonces.size > MAX_NONCES) nonces.delete(nonces.keys().next().value!);
    res.writeHead(401, {
      'WWW-Authenticate': `Digest realm="${ANTMINER_REALM}", nonce="${nonce}", qop="auth", algorithm=MD5${stale ? ', stale=true' : ''}`,
      'Content-Type': 'application/json',
    });
    res.end(JSON.stringify({ stats: 'error', code: 'E401', msg: 'authentication required' }));
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooBig = true;
      else chunks.push(c);
    });
    req.on('error', (err) => opts.log?.warn({ err }, 'miner web request error'));
    req.on('end', () => {
      stats.requests++;
      const auth = authorized(req);
      if (auth !== true) return challenge(res, auth === 'stale');
      let reply: { status: number; body: unknown };
      try {
        reply = tooBig
          ? { status: 413, body: { stats: 'error', code: 'E413', msg: `body over ${MAX_BODY_BYTES} bytes` } }
          : handleAntminerWebRequest(req.method ?? 'GET', req.url ?? '/', Buffer.concat(chunks).toString('utf8'), opts.miner);
      } catch (err) {
        // The protocol module answers every bad request itself; this is a bug guard.
        opts.log?.warn({ err }, 'miner web handler failed');
        reply = { status: 500, body: { stats: 'error', code: 'E500', msg: 'internal error' } };
      }
      res.writeHead(reply.status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(reply.body));
    });
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutMs ?? 5_000;
  server.on('clientError', (_err, socket: net.Socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.warn({ err }, 'miner web server error'));
  const addr = server.address() as net.AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    host,
    port: addr.port,
    stats,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
