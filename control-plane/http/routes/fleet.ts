// Fleet state: status, sites and devices, from the live registry.
import { createRoute, z } from '@hono/zod-openapi';
import { notFound } from '../../errors.js';
import { latestAsicSample, latestGpuSample } from '../../db/telemetry-queries.js';
import type { Api, HttpDeps } from '../deps.js';
import { DEFAULT_PAGE, MAX_PAGE, pageOf, pageQuery } from '../paging.js';
import { asicSampleView, deviceView, gpuSampleView, siteView, statusView } from '../views.js';

const Json = z.record(z.string(), z.unknown());
const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });

export function registerFleetRoutes(app: Api, { registry, db, leadership }: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'get', path: '/api/v1/status', summary: 'Fleet and per-site totals',
      description: '`replica`: this control plane, whether it leads (runs the singleton loops), and which replica does',
      responses: ok('status'),
    }),
    (c) => {
      const l = leadership?.();
      return c.json({ ...statusView(registry), ...(l ? { replica: { id: l.holder, leader: l.leader, leader_id: l.leaderHolder, lease: l.name, token: l.token, leading_since: l.since } } : {}) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/sites',
      summary: 'Sites, a page at a time, in id order',
      description:
        `\`sites\`: up to \`limit\` sites (default ${DEFAULT_PAGE}, at most ${MAX_PAGE}) after \`cursor\`; \`count\`: how many ` +
        'sites there are in all (every page); `next_cursor`: pass it as `cursor` for the next page, null on the last.',
      request: { query: z.object(pageQuery) },
      responses: ok('sites'),
    }),
    (c) => {
      const page = pageOf(registry.sites(), c.req.valid('query'));
      return c.json({ sites: page.items.map((s) => siteView(registry, s)), count: page.total, next_cursor: page.next_cursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/sites/{id}',
      request: { params: z.object({ id: z.string().min(1).max(63) }) },
      responses: ok('one site with its devices'),
    }),
    (c) => {
      const { id } = c.req.valid('param');
      const site = registry.site(id);
      if (!site) throw notFound('site', id);
      return c.json({ ...siteView(registry, site), devices: registry.devices({ site: id }).map(deviceView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/devices',
      request: {
        query: z.object({
          site: z.string().min(1).max(63).optional(),
          kind: z.enum(['gpu', 'asic']).optional(),
          online: z.enum(['true', 'false']).optional(),
          ...pageQuery,
        }),
      },
      summary: 'Devices with their latest sample, a page at a time, in id order',
      description:
        `\`devices\`: up to \`limit\` devices (default ${DEFAULT_PAGE}, at most ${MAX_PAGE}) matching the filters, after ` +
        '`cursor`; `count`: how many devices match the filters in all (every page), so it equals `devices.length` ' +
        'only on a single page; `next_cursor`: pass it as `cursor` (with the same filters) for the next page, null on the last.',
      responses: ok('devices with their latest sample'),
    }),
    (c) => {
      const q = c.req.valid('query');
      if (q.site && !registry.site(q.site)) throw notFound('site', q.site);
      let devices = registry.devices({ site: q.site, kind: q.kind });
      if (q.online) devices = devices.filter((d) => d.online === (q.online === 'true'));
      const page = pageOf(devices, q);
      return c.json({ devices: page.items.map(deviceView), count: page.total, next_cursor: page.next_cursor }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/devices/{id}',
      request: { params: z.object({ id: z.string().min(1).max(128) }) },
      responses: ok('one device with its latest sample'),
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const d = registry.device(id);
      if (!d) throw notFound('device', id);
      const view = deviceView(d);
      if (view.latest === null) {
        // Not heard from since this control plane started: the newest stored sample instead.
        if (d.kind === 'gpu') {
          const s = await latestGpuSample(db, id);
          if (s) view.latest = gpuSampleView(s);
        } else {
          const s = await latestAsicSample(db, id);
          if (s) view.latest = asicSampleView(s);
        }
      }
      return c.json(view, 200);
    },
  );
}

