// Fleet state: status, sites and devices, from the live registry.
import { createRoute, z } from '@hono/zod-openapi';
import { notFound } from '../../errors.js';
import { latestAsicSample, latestGpuSample } from '../../db/telemetry-queries.js';
import type { Api, HttpDeps } from '../deps.js';
import { asicSampleView, deviceView, gpuSampleView, siteView, statusView } from '../views.js';

const Json = z.record(z.string(), z.unknown());
const ok = (description: string) => ({ 200: { description, content: { 'application/json': { schema: Json } } } });

export function registerFleetRoutes(app: Api, { registry, db }: HttpDeps): void {
  app.openapi(
    createRoute({ method: 'get', path: '/api/v1/status', summary: 'Fleet and per-site totals', responses: ok('status') }),
    (c) => c.json(statusView(registry), 200),
  );

  app.openapi(
    createRoute({ method: 'get', path: '/api/v1/sites', summary: 'All sites', responses: ok('sites') }),
    (c) => c.json({ sites: registry.sites().map((s) => siteView(registry, s)) }, 200),
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
        }),
      },
      responses: ok('devices with their latest sample'),
    }),
    (c) => {
      const q = c.req.valid('query');
      if (q.site && !registry.site(q.site)) throw notFound('site', q.site);
      let devices = registry.devices({ site: q.site, kind: q.kind });
      if (q.online) devices = devices.filter((d) => d.online === (q.online === 'true'));
      return c.json({ devices: devices.map(deviceView), count: devices.length }, 200);
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

