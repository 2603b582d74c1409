// GET /api/v1/telemetry?device=|site=&from=&to=&bucket= — a time-bucketed series.
//
// What one request may cost is bounded twice: by the points it answers (MAX_POINTS) and by the
// raw samples it reads (deps.limits.telemetryMaxScanRows, HCP_TELEMETRY_MAX_SCAN_ROWS). Every
// bucket, however coarse, is computed from raw samples, so a site series over a month reads a
// month of every device's samples; the bucket does not make that cheaper. The scan is refused
// up front when the registry's device count × the span at one sample per second is past the
// cap, and the queries themselves stop reading at the cap (an agent sampling faster than 1 s,
// or samples of devices the registry no longer lists) and are refused then too.
import { createRoute, z } from '@hono/zod-openapi';
import { HcpError, notFound } from '../../errors.js';
import { asicSeries, gpuSeries, ScanLimitError, siteSeries } from '../../db/telemetry-queries.js';
import type { Api, HttpDeps } from '../deps.js';
import { isoTime } from '../time.js';

const UNIT_S: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };
const MAX_POINTS = 10_000;
/** the agents' default sampling (--sample-interval-ms 1000): the estimate's rate per device */
const SAMPLE_INTERVAL_S = 1;

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

const time = isoTime;

/**
 * The 400 for a query past the scan cap: which fields to change, and by how much when the
 * estimate is what refused it. When the stored samples themselves are past the cap they are
 * denser than the estimate's one per second, so no span can be promised from it.
 */
function tooManyRows(o: { maxRows: number; devices: number; fromMs: number; toMs: number; estimated?: number; site: boolean }): HcpError {
  const spanS = Math.round((o.toMs - o.fromMs) / 1000);
  const orDevice = o.site ? ', or ask for one device (device=) instead of the whole site' : '';
  const bucket = { field: 'bucket', message: 'every bucket is computed from the raw samples: a larger one reads as many' };
  if (o.estimated === undefined) {
    return new HcpError(
      'invalid_argument',
      `the ${spanS} s from from to to hold more than ${o.maxRows} stored samples, the most one request reads. ` +
        `Narrow from/to${orDevice}; a larger bucket reads the same samples.`,
      'too_many_rows',
      {
        fields: [{ field: 'from', message: 'narrow the span' }, { field: 'to', message: 'narrow the span' }, bucket],
        max_rows: o.maxRows,
      },
    );
  }
  const maxSpanS = Math.max(1, Math.floor((o.maxRows * SAMPLE_INTERVAL_S) / Math.max(1, o.devices)));
  const plural = o.devices === 1 ? '' : 's';
  return new HcpError(
    'invalid_argument',
    `this query would read about ${o.estimated} stored samples (${o.devices} device${plural} × ${spanS} s at one sample per second); ` +
      `at most ${o.maxRows} are read per request. Narrow from/to to at most ${maxSpanS} s ` +
      `(e.g. to=${new Date(o.fromMs + maxSpanS * 1000).toISOString()})${orDevice}; a larger bucket reads the same samples.`,
    'too_many_rows',
    {
      fields: [
        { field: 'from', message: `with to, at most ${maxSpanS} s apart` },
        { field: 'to', message: `with from, at most ${maxSpanS} s apart` },
        bucket,
      ],
      max_rows: o.maxRows,
      estimated_rows: o.estimated,
      max_span_s: maxSpanS,
    },
  );
}

export function registerTelemetryRoutes(app: Api, { registry, readDb: db, limits }: HttpDeps): void {
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
      summary: 'A time-bucketed series of one device or one site',
      description:
        'Refused (400, reason `too_many_rows`) when it would read more stored samples than the server allows ' +
        '(HCP_TELEMETRY_MAX_SCAN_ROWS): devices × span at one sample per second, or the samples actually in the range.',
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
      const maxRows = limits.telemetryMaxScanRows;
      const range = { fromMs, toMs, bucketS, maxRows };
      const head = { from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), bucket_s: bucketS };
      const capped = async <T>(devices: number, run: () => Promise<T>): Promise<T> => {
        const estimated = Math.ceil((devices * (toMs - fromMs)) / 1000 / SAMPLE_INTERVAL_S);
        if (estimated > maxRows) throw tooManyRows({ maxRows, devices, fromMs, toMs, estimated, site: !q.device });
        try {
          return await run();
        } catch (err) {
          if (err instanceof ScanLimitError) throw tooManyRows({ maxRows, devices, fromMs, toMs, site: !q.device });
          throw err;
        }
      };
      if (q.device) {
        const d = registry.device(q.device);
        if (!d) throw notFound('device', q.device);
        const points = await capped<unknown[]>(1, () => (d.kind === 'gpu' ? gpuSeries(db, d.id, range) : asicSeries(db, d.id, range)));
        return c.json({ device: d.id, kind: d.kind, site: d.siteId, ...head, points }, 200);
      }
      const site = registry.site(q.site!);
      if (!site) throw notFound('site', q.site!);
      const points = await capped(registry.devices({ site: site.id }).length, () => siteSeries(db, site.id, range));
      return c.json({ site: site.id, ...head, points }, 200);
    },
  );
}
