// The web console's built assets (web/dist, made by Vite: scripts/build-web.ts) at `/`. A GET of a
// file that exists answers it; any other GET that is not the API's (/api, /metrics, /health,
// /ready, /openapi.json) answers index.html, so the single-page app's own paths (/sites/texas-1)
// load on a reload too. Hashed assets (/assets/*) are cached for good; index.html never, so a
// new build is picked up on the next load. Nothing here needs a key: the assets hold no data, and
// every call the page makes goes to /api/v1 with the user's key.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Context } from 'hono';

const NOT_CONSOLE = /^\/(api|metrics|health|ready|openapi\.json)(\/|$)/;

/**
 * The console's answer to a request no route matched (app.ts's notFound, so that no route of the
 * API is shadowed and the API's policy lookup, which reads the matched route, is unchanged), or
 * null when the request is not the console's. Null for everything when web/dist is not built.
 */
export function consoleHandler(dir: string): ((c: Context) => Promise<Response | null>) | null {
  const indexFile = join(dir, 'index.html');
  if (!existsSync(indexFile)) return null;
  const files = serveStatic({ root: dir });
  return async (c) => {
    if ((c.req.method !== 'GET' && c.req.method !== 'HEAD') || NOT_CONSOLE.test(c.req.path)) return null;
    let found = true;
    const res = await files(c, async () => {
      found = false;
    });
    if (found && res) {
      // hashed names under /assets never change; anything else (index.html) is asked for again
      res.headers.set('cache-control', c.req.path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
      return res;
    }
    // not a file: the app's own route (a path with a file extension is a missing file: 404)
    if (/\.[a-z0-9]{1,8}$/i.test(c.req.path)) return null;
    c.header('cache-control', 'no-cache');
    return c.html(readFileSync(indexFile, 'utf8'));
  };
}
