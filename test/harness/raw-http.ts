// An HTTP/1.1 client that sends what it is given: any method token, a request target exactly as
// written (fetch would normalise `..`, `%2e` and `#`), any header, any body bytes.
import { Agent, request, type IncomingHttpHeaders } from 'node:http';

export interface RawRequest {
  method: string;
  /** the request target, sent as is; characters a request line cannot hold are percent-encoded */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
}

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

// a connection per request: a kept-alive socket the server is closing (after a refused body it did not
// read) would fail the next request on the client's side and look like a dropped answer
const agent = new Agent({ keepAlive: false });

/** what a request line may carry: printable ASCII but space; the rest percent-encoded as UTF-8 */
export function requestTarget(s: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    out += c > 0x20 && c < 0x7f ? ch : Buffer.from(ch, 'utf8').toString('hex').replace(/(..)/g, '%$1').toUpperCase();
  }
  return out;
}

/**
 * percent-encoding of any string: what encodeURIComponent writes, and for a lone surrogate (which
 * it refuses) the three bytes its code unit would take (WTF-8), as a careless client would send it
 */
export function pctEncode(s: string): string {
  return s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|[^]/gu, (ch) => {
    if (ch.length === 1 && ch >= '\uD800' && ch <= '\uDFFF') {
      const c = ch.charCodeAt(0);
      return [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)].map((b) => `%${b.toString(16).toUpperCase()}`).join('');
    }
    return encodeURIComponent(ch);
  });
}

/** a header value Node will send: latin-1 without control characters, the rest percent-encoded */
export function headerValue(s: string): string {
  return s.replace(/[^\x20-\x7e\x80-\xff]+/gu, (run) => pctEncode(run));
}

export function rawRequest(base: string, r: RawRequest): Promise<RawResponse> {
  const u = new URL(base);
  // Node frames a body by itself only for some methods: a GET's body would be read as the next request
  const headers = r.body && !Object.keys(r.headers).some((h) => h.toLowerCase() === 'transfer-encoding') ? { ...r.headers, 'content-length': String(r.body.length) } : r.headers;
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: r.method, path: requestTarget(r.path), headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      // a live stream (GET /api/v1/events) never ends: its first frames are the answer
      if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream') && r.method.toUpperCase() !== 'HEAD') {
        res.once('data', (c: Buffer) => {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: c });
        });
        res.on('error', () => {});
        return;
      }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(r.body);
  });
}

export function closeRawAgent(): void {
  agent.destroy();
}
