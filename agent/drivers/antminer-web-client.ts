// Client for the Antminer web control endpoint (port 80): get_miner_conf.cgi and
// set_miner_conf.cgi. Stock firmware (lighttpd mod_auth) demands HTTP Digest (RFC 7616, MD5,
// qop=auth); a Basic challenge is answered too. A session keeps the last challenge and answers
// it up front on the next call (nonce reused, nc counting up, as RFC 7616 allows), so a call is
// one round trip instead of two; a 401 — the nonce expired or went stale — is answered once with
// the fresh challenge. Connections are kept alive between calls. node:http rather than fetch:
// a trip sends hundreds of small requests at once, and fetch costs about twice the CPU per request.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';

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
export function answerChallenge(challenge: string, method: string, uri: string, user: string, password: string, nc = 1): string {
  if (/^basic\b/i.test(challenge)) return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  if (!/^digest\b/i.test(challenge)) throw new AntminerWebError('auth', `unsupported auth scheme: ${challenge.split(' ')[0]}`);
  const c = parseAuthParams(challenge.replace(/^digest\s+/i, ''));
  if (c.algorithm && c.algorithm.toUpperCase() !== 'MD5') throw new AntminerWebError('auth', `unsupported digest algorithm ${c.algorithm}`);
  if (!c.realm || !c.nonce) throw new AntminerWebError('auth', 'digest challenge without realm or nonce');
  const ha1 = md5(`${user}:${c.realm}:${password}`);
  const ha2 = md5(`${method}:${uri}`);
  const parts = [`username="${user}"`, `realm="${c.realm}"`, `nonce="${c.nonce}"`, `uri="${uri}"`, 'algorithm=MD5'];
  if (c.qop?.split(',').some((q) => q.trim() === 'auth')) {
    const ncHex = nc.toString(16).padStart(8, '0');
    const cnonce = randomBytes(8).toString('hex');
    parts.push(`qop=auth`, `nc=${ncHex}`, `cnonce="${cnonce}"`, `response="${md5(`${ha1}:${c.nonce}:${ncHex}:${cnonce}:auth:${ha2}`)}"`);
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
  const code = (e as { code?: string })?.code ?? e?.cause?.code;
  if (code === 'ECONNREFUSED') return new AntminerWebError('refused', `${where}: connection refused`);
  return new AntminerWebError('network', `${where}: ${code ?? e?.cause?.message ?? e?.message ?? String(err)}`);
}

/**
 * One pool for every miner. Idle sockets are kept (they do not hold the process open) and closed
 * after 4 s, before lighttpd drops them at 5 s, so a reused socket is rarely one the miner is
 * closing.
 */
const keepAlive = new http.Agent({ keepAlive: true, timeout: 4_000 });

interface Reply {
  status: number;
  /** the Digest challenge when one is offered, else the first; undefined when none */
  challenge: string | undefined;
  text: string;
}

function pickChallenge(values: string[] | undefined): string | undefined {
  return values?.find((v) => /^digest\b/i.test(v)) ?? values?.[0];
}

/**
 * One request. A kept-alive socket may be closed by the miner just as we reuse it: when that
 * happens before any byte of the reply came back, the request cannot have been acted on, and it
 * is sent once more on a new socket (as Node's docs advise) with headers made afresh (a new
 * nonce count). Once a reply has begun, an error is an error: a conf write is never sent twice.
 */
function send(host: string, port: number, path: string, method: string, headers: () => Record<string, string>, body: string | undefined, signal: AbortSignal, retried = false): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    let replied = false;
    const req = http.request({ host, port, path, method, headers: headers(), agent: keepAlive, signal }, (res) => {
      replied = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('aborted', () => reject(signal.reason ?? new Error('reply aborted')));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, challenge: pickChallenge(res.headersDistinct['www-authenticate']), text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    // "begun": any byte of the reply, even a status line without its headers
    let readBefore = 0;
    req.on('socket', (sock) => (readBefore = sock.bytesRead));
    req.on('error', (err: NodeJS.ErrnoException) => {
      replied ||= (req.socket?.bytesRead ?? 0) > readBefore;
      if (!retried && !replied && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE') && !signal.aborted) {
        resolve(send(host, port, path, method, headers, body, signal, true));
      } else reject(err);
    });
    req.end(body);
  });
}

/** a challenge, and the nonce count used on its nonce so far (RFC 7616: per nonce) */
interface Nonce {
  challenge: string;
  nc: number;
}

/** One miner's web endpoint. Calls may overlap; each takes the next count on the nonce it uses. */
export class AntminerWebSession {
  private nonce: Nonce | null = null;
  /** HTTP requests sent, challenges and resends included (tests and benchmarks count round trips) */
  requests = 0;

  constructor(readonly target: AntminerWebTarget) {}

  getConf(): Promise<MinerConf> {
    return this.call('GET', '/cgi-bin/get_miner_conf.cgi');
  }

  /** stock firmware answers {"stats":"success","code":"M000","msg":"OK!"}; anything else is a failure */
  async setConf(conf: MinerConf): Promise<void> {
    const reply = await this.call('POST', '/cgi-bin/set_miner_conf.cgi', JSON.stringify(conf));
    if (reply.stats !== 'success') {
      throw new AntminerWebError('bad_reply', `set_miner_conf refused: ${String(reply.msg ?? reply.code ?? JSON.stringify(reply))}`);
    }
  }

  private async call(method: 'GET' | 'POST', path: string, body?: string): Promise<MinerConf> {
    const t = this.target;
    const where = `http://${t.host}:${t.port}${path}`;
    const signal = AbortSignal.timeout(t.timeoutMs);
    try {
      const base: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
      const request = (n: Nonce | null) =>
        send(t.host, t.port, path, method, () => {
          this.requests++;
          if (!n) return base;
          return { ...base, authorization: answerChallenge(n.challenge, method, path, t.user, t.password, ++n.nc) };
        }, body, signal);
      const cached = this.nonce;
      let res = await request(cached);
      if (res.status === 401) {
        if (!res.challenge) throw new AntminerWebError('auth', `${where}: 401 without a challenge`, 401);
        // A fresh challenge: our cached nonce expired (or there was none). Answer it once, and
        // keep it for the next calls unless another call has already kept a newer one.
        const fresh: Nonce = { challenge: res.challenge, nc: 0 };
        if (this.nonce === cached) this.nonce = fresh;
        res = await request(fresh);
        if (res.status === 401) {
          if (this.nonce === fresh) this.nonce = null;
          throw new AntminerWebError('auth', `${where}: credentials for ${t.user} refused`, 401);
        }
      }
      const text = res.text;
      if (res.status < 200 || res.status > 299) throw new AntminerWebError('http_error', `${where}: HTTP ${res.status} ${text.slice(0, 200)}`, res.status);
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
}
