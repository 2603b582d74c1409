// REST over https for tests: node's fetch takes no CA, so node:https trusting the test CA.
import { request } from 'node:https';

export function httpsRequest(url: string, o: { ca: Buffer; method?: string; headers?: Record<string, string>; body?: unknown }): Promise<{ status: number; json: () => Record<string, any> }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return new Promise((resolve, reject) => {
    const payload = o.body === undefined ? undefined : JSON.stringify(o.body);
    const req = request(url, { method: o.method ?? 'GET', ca: o.ca, headers: { ...(payload ? { 'content-type': 'application/json' } : {}), ...o.headers } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: () => JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
