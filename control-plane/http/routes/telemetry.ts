// GET /api/v1/telemetry?device=|site=&from=&to=&bucket= — a time-bucketed series.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { asicSeries, gpuSeries, siteSeries } from '../../db/telemetry-queries.js';
import type { Api, HttpDeps } from '../deps.js';

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_POINTS = 10_000;

/** '10s', '1m', '5m', '1h', '1d' → seconds */
export function parseBucket(s: string): number | null {
  const m = /^(\d{1,5})([smhd])$/.exec(s);
  if (!m) return null;
  const v = Number(m[1]) * UNIT_S[m[2]!]!;
  return v > 0 ? v : null;
}

// Around 300 points for the span unless a bucket is asked for, rounded to a readable step.
const STEPS = [1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400];
export function defaultBucket(spanS: number): number {
  return STEPS.find((s) => spanS / s <= 300) ?? 86400;
}

const time = z
  .string()
  .refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO-8601 time, e.g. 2026-11-24T09:00:00Z');

export function registerTelemetryRoutes(app: Api, { registry, db }: HttpDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/v1/telemetry',
      request: {
        query: z.object({
          device: z.string().min(1).max(128).optional(),
          site: z.string().min(1).max(63).optional(),
          from: time.optional(),
          to: time.optional(),
          bucket: z.string().regex(/^\d{1,5}[smhd]$/, "must be a duration like '10s', '1m', '5m', '1h'").optional(),
        }),
      },
      responses: { 200: { description: 'series', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } } },
    }),
    async (c) => {
      const q = c.req.valid('query');
      if (!!q.device === !!q.site) {
        throw new HcpError('invalid_argument', 'give exactly one of device or site', 'validation_failed', {
          fields: [{ field: 'device', message: 'give exactly one of device or site' }],
        });
      }
      const toMs = q.to ? Date.parse(q.to) : Date.now();
      const fromMs = q.from ? Date.parse(q.from) : toMs - 3600_000;
      if (fromMs >= toMs) {
        throw new HcpError('invalid_argument', 'from must be before to', 'validation_failed', { fields: [{ field: 'from', message: 'must be before to' }] });
      }
      const bucketS = q.bucket ? parseBucket(q.bucket) : defaultBucket((toMs - fromMs) / 1000);
      if (!bucketS) throw new HcpError('invalid_argument', 'bucket must be positive', 'validation_failed', { fields: [{ field: 'bucket', message: 'must be positive' }] });
      if ((toMs - fromMs) / 1000 / bucketS > MAX_POINTS) {
        throw new HcpError('invalid_argument', `span/bucket gives more than ${MAX_POINTS} points; use a larger bucket`, 'validation_failed', {
          fields: [{ field: 'bucket', message: `too small for the span (max ${MAX_POINTS} points)` }],
        });
      }
      const range = { fromMs, toMs, bucketS };
      const head = { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), bucket_s: bucketS };
      if (q.device) {
        const d = registry.device(q.device);
        if (!d) throw notFound('device', q.device);
        const points = d.kind === 'gpu' ? await gpuSeries(db, d.id, range) : await asicSeries(db, d.id, range);
        return c.json({ device: d.id, kind: d.kind, site: d.siteId, ...head, points }, 200);
      }
      const site = registry.site(q.site!);
      if (!site) throw notFound('site', q.site!);
      return c.json({ site: site.id, ...head, points: await siteSeries(db, site.id, range) }, 200);
    },
  );
}
