// GET /api/v1/telemetry caps the stored samples one request reads (limits.telemetryMaxScanRows),
// on the real PostgreSQL: refused up front from the registry's device count × the span, and
// refused when the samples actually in the range are past the cap (denser than one a second).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import type { Api } from '../control-plane/http/deps.js';
import { Registry } from '../control-plane/registry/registry.js';
import { testHttpApp } from './harness/http-app.js';
import { bearer } from './harness/auth.js';
import { describePg } from './harness/pg.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const MAX_ROWS = 1000;
const T0 = Date.parse('2026-11-24T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

describePg('telemetry scan cap', (pg) => {
  let db: Db;
  let app: Api;
  const registry = new Registry({ staleAfterMs: 60_000 });
  const get = async (query: string) => {
    const r = await app.request(`/api/v1/telemetry?${query}`, { headers: bearer() });
    return { status: r.status, body: (await r.json()) as Json };
  };

  /** a device in the registry, and `perSecond` samples a second of it for `seconds` from T0 */
  const device = async (site: string, id: string, kind: 'gpu' | 'asic', seconds: number, perSecond = 1) => {
    if (!registry.site(site)) registry.addSite({ id: site, name: site, region: 'ercot', powerCapacityKw: 1000 });
    registry.addDevice({
      id, siteId: site, kind, model: kind, driver: 'test', endpoint: null, serial: null, ratedPowerW: 1000,
      ratedHashrateThs: kind === 'asic' ? 270 : null, memoryTotalMib: kind === 'gpu' ? 81559 : null, lastSeenMs: null,
    });
    const times = `generate_series(0, ${seconds * perSecond - 1}) AS i`;
    const time = `TIMESTAMPTZ '${at(0)}' + i * INTERVAL '${1000 / perSecond} milliseconds'`;
    if (kind === 'gpu') {
      await db.query(
        `INSERT INTO gpu_telemetry (time, site_id, device_id, utilization_pct, memory_used_mib, memory_total_mib, temperature_c, power_w, sm_clock_mhz, state)
         SELECT ${time}, $1, $2, 50, 1000, 81559, 60, 700, 1980, 'idle' FROM ${times}`,
        [site, id],
      );
    } else {
      await db.query(
        `INSERT INTO asic_telemetry (time, site_id, device_id, hashrate_5s_ths, hashrate_avg_ths, power_w, board_temperatures_c, chip_temperatures_c,
                                    max_chip_temperature_c, fan_rpm, accepted_shares, rejected_shares, hardware_errors, mining_state)
         SELECT ${time}, $1, $2, 270, 270, 3000, '{60}', '{70}', 70, '{5000}', 0, 0, 0, 'mining' FROM ${times}`,
        [site, id],
      );
    }
  };

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    await migrate(db);
    // texas-1: 5 devices at one sample a second for 150 s (750 samples)
    await device('texas-1', 'gpu-texas-1-0001', 'gpu', 150);
    await device('texas-1', 'gpu-texas-1-0002', 'gpu', 150);
    for (const n of [1, 2, 3]) await device('texas-1', `asic-texas-1-0000${n}`, 'asic', 150);
    // dense-1: one GPU sampled ten times a second for 200 s (2,000 samples)
    await device('dense-1', 'gpu-dense-1-0001', 'gpu', 200, 10);
    // mixed-1: a GPU and an ASIC, five samples a second each, for 200 s
    await device('mixed-1', 'gpu-mixed-1-0001', 'gpu', 200, 5);
    await device('mixed-1', 'asic-mixed-1-00001', 'asic', 200, 5);
    app = testHttpApp({ registry, db, limits: { telemetryMaxScanRows: MAX_ROWS } });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('answers a site series within the cap, every sample counted', async () => {
    const r = await get(`site=texas-1&from=${at(0)}&to=${at(120)}&bucket=1m`);
    expect(r.status).toBe(200);
    expect(r.body.points).toEqual([0, 60].map((s) => ({
      ts: at(s), power_w: 2 * 700 + 3 * 3000, gpu_power_w: 2 * 700, asic_power_w: 3 * 3000, hashrate_ths: 3 * 270, gpu_utilization_pct: 50,
      gpu_max_temperature_c: 60, asic_max_chip_temperature_c: 70, gpus_reporting: 2, asics_reporting: 3,
    })));
    const d = await get(`device=gpu-texas-1-0001&from=${at(0)}&to=${at(1000)}&bucket=5m`); // 1 × 1000 s: at the cap
    expect(d.status).toBe(200);
    expect(d.body.points.reduce((n: number, p: Json) => n + p.samples, 0)).toBe(150);
  });

  it('refuses up front a site series whose devices × span is past the cap, saying how to narrow it', async () => {
    const r = await get(`site=texas-1&from=${at(0)}&to=${at(300)}&bucket=1h`); // 5 devices × 300 s = 1500
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'invalid_argument', reason: 'too_many_rows', estimated_rows: 1500, max_rows: MAX_ROWS, max_span_s: 200 });
    expect(r.body.error.fields.map((f: Json) => f.field)).toEqual(['from', 'to', 'bucket']);
    expect(r.body.error.message).toContain(`to=${at(200)}`);
    expect(r.body.error.message).toContain('device=');
    // the span it suggests is answered
    expect((await get(`site=texas-1&from=${at(0)}&to=${at(200)}&bucket=1h`)).status).toBe(200);
    const d = await get(`device=gpu-texas-1-0001&from=${at(0)}&to=${at(1001)}`);
    expect(d.status).toBe(400);
    expect(d.body.error).toMatchObject({ reason: 'too_many_rows', estimated_rows: 1001 });
  });

  it('refuses a series whose stored samples are past the cap although the estimate is not', async () => {
    for (const q of [`site=dense-1&from=${at(0)}&to=${at(150)}`, `device=gpu-dense-1-0001&from=${at(0)}&to=${at(150)}&bucket=1m`]) {
      const r = await get(q); // 1 device × 150 s estimated; 1,500 stored
      expect(r.status, q).toBe(400);
      expect(r.body.error, q).toMatchObject({ reason: 'too_many_rows', max_rows: MAX_ROWS });
      expect(r.body.error.estimated_rows, q).toBeUndefined();
      expect(r.body.error.fields.map((f: Json) => f.field)).toEqual(['from', 'to', 'bucket']);
    }
    const ok = await get(`device=gpu-dense-1-0001&from=${at(0)}&to=${at(100)}&bucket=1m`); // exactly 1,000 stored
    expect(ok.status).toBe(200);
    expect(ok.body.points.map((p: Json) => p.samples)).toEqual([600, 400]);
  });

  it('counts a site’s GPU and ASIC samples against one cap', async () => {
    const full = await get(`site=mixed-1&from=${at(0)}&to=${at(100)}&bucket=1m`); // 500 + 500
    expect(full.status).toBe(200);
    expect(full.body.points.map((p: Json) => [p.gpus_reporting, p.asics_reporting])).toEqual([[1, 1], [1, 1]]);
    const over = await get(`site=mixed-1&from=${at(0)}&to=${at(101)}&bucket=1m`); // 505 + 505: each alone would fit
    expect(over.status).toBe(400);
    expect(over.body.error.reason).toBe('too_many_rows');
  });
});
