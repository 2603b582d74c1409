// Client for the Antminer web control endpoint (port 80): get_miner_conf.cgi and
// set_miner_conf.cgi. Stock firmware (lighttpd mod_auth) demands HTTP Digest (RFC 7616, MD5,
// qop=auth), so each call is challenge → answer; a Basic challenge is answered too.
import { createHash, randomBytes } from 'node:crypto';

export type AntminerWebErrorCode = 'timeout' | 'refused' | 'network' | 'auth' | 'http_error' | 'bad_reply';

/** The one error type this client throws; `code` is stable, the message is for humans. */
export class AntminerWebError extends Error {
  override readonly name = 'AntminerWebError';
  constructor(
    readonly code: AntminerWebErrorCode,
    message: string,
    readonly httpStatus?: number,
  ) {
    super(message);
  }
}

export interface AntminerWebTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  /** for the whole call, challenge and answer together */
  timeoutMs: number;
}

export type MinerConf = Record<string, unknown>;

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** `realm="a", qop="auth"` → { realm: 'a', qop: 'auth' } (RFC 7235 auth-param list) */
export function parseAuthParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    out[m[1]!.toLowerCase()] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  }
  return out;
}

/** the Authorization header answering a WWW-Authenticate challenge */
export function answerChallenge(challenge: string, method: string, uri: string, user: string, password: string): string {
  if (/^basic\b/i.test(challenge)) return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  if (!/^digest\b/i.test(challenge)) throw new AntminerWebError('auth', `unsupported auth scheme: ${challenge.split(' ')[0]}`);
  const c = parseAuthParams(challenge.replace(/^digest\s+/i, ''));
  if (c.algorithm && c.algorithm.toUpperCase() !== 'MD5') throw new AntminerWebError('auth', `unsupported digest algorithm ${c.algorithm}`);
  if (!c.realm || !c.nonce) throw new AntminerWebError('auth', 'digest challenge without realm or nonce');
  const ha1 = md5(`${user}:${c.realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const parts = [`username="${user}"`, `realm="${c.realm}"`, `nonce="${c.nonce}"`, `uri="${uri}"`, 'algorithm=MD5'];
  if (c.qop?.split(',').some((q) => q.trim() === 'auth')) {
    const nc = '00000001';
    const cnonce = randomBytes(8).toString('hex');
    parts.push(`qop=auth`, `nc=${nc}`, `cnonce="${cnonce}"`, `response="${md5(`${ha1}:${c.nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`);
  } else {
    parts.push(`response="${md5(`${ha1}:${c.nonce}:${ha2}`)}"`);
  }
  if (c.opaque) parts.push(`opaque="${c.opaque}"`);
  return `Digest ${parts.join(', ')}`;
}

function networkError(err: unknown, where: string, timeoutMs: number): AntminerWebError {
  if (err instanceof AntminerWebError) return err;
  const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new AntminerWebError('timeout', `${where}: no reply within ${timeoutMs} ms`);
  const code = e?.cause?.code;
  if (code === 'ECONNREFUSED') return new AntminerWebError('refused', `${where}: connection refused`);
  return new AntminerWebError('network', `${where}: ${code ?? e?.cause?.message ?? e?.message ?? String(err)}`);
}

async function call(t: AntminerWebTarget, method: 'GET' | 'POST', path: string, body?: string): Promise<MinerConf> {
  const where = `http://${t.host}:${t.port}${path}`;
  const signal = AbortSignal.timeout(t.timeoutMs);
  try {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    const init = { method, body, signal, headers };
    let res = await fetch(where, init);
    if (res.status === 401) {
      const challenge = res.headers.get('www-authenticate');
      await res.arrayBuffer();
      if (!challenge) throw new AntminerWebError('auth', `${where}: 401 without a challenge`, 401);
      res = await fetch(where, { ...init, headers: { ...headers, authorization: answerChallenge(challenge, method, path, t.user, t.password) } });
      if (res.status === 401) {
        await res.arrayBuffer();
        throw new AntminerWebError('auth', `${where}: credentials for ${t.user} refused`, 401);
      }
    }
    const text = await res.text();
    if (!res.ok) throw new AntminerWebError('http_error', `${where}: HTTP ${res.status} ${text.slice(0, 200)}`, res.status);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new AntminerWebError('bad_reply', `${where}: reply is not JSON: ${text.slice(0, 100)}`);
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new AntminerWebError('bad_reply', `${where}: reply is not a JSON object`);
    return json as MinerConf;
  } catch (err) {
    throw networkError(err, where, t.timeoutMs);
  }
}

export function getMinerConf(t: AntminerWebTarget): Promise<MinerConf> {
  return call(t, 'GET', '/cgi-bin/get_miner_conf.cgi');
}

/** stock firmware answers {"stats":"success","code":"M000","msg":"OK!"}; anything else is a failure */
export async function setMinerConf(t: AntminerWebTarget, conf: MinerConf): Promise<void> {
  const reply = await call(t, 'POST', '/cgi-bin/set_miner_conf.cgi', JSON.stringify(conf));
  if (reply.stats !== 'success') {
    throw new AntminerWebError('bad_reply', `set_miner_conf refused: ${String(reply.msg ?? reply.code ?? JSON.stringify(reply))}`);
  }
}
