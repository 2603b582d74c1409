// What the REST port answers while the control plane cannot start because its database does not
// answer (main.ts keeps retrying): /health 200 (the process is alive and retrying, so a liveness
// probe must not restart it), /ready 503 with checks.database false (send no traffic here yet),
// everything else 503 database_unavailable with a Retry-After. Once the database answers, this
// listener is closed and the full API takes the same port.
import { errorBody } from './errors.js';
import type { FetchHandler } from './listen.js';

export function startingFetch(state: () => { since: number; attempts: number }): FetchHandler {
  const json = (body: unknown, status: number, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
  return (req) => {
    const path = new URL(req.url).pathname;
    const { since, attempts } = state();
    if (path === '/health') return json({ status: 'ok', starting: true }, 200);
    if (path === '/ready') {
      return json({ status: 'not_ready', checks: { database: false }, waiting_s: Math.round((Date.now() - since) / 1000), attempts }, 503, { 'retry-after': '2' });
    }
    return json(errorBody('unavailable', 'database_unavailable', 'the control plane is waiting for its database; retry shortly'), 503, { 'retry-after': '2' });
  };
}
