// The registry tracker on a real PostgreSQL, as a fleet reconnecting drives it: a poke per
// Hello, hundreds in a row. Pokes share sweeps (one at most every pokeGapMs), every site's
// transition is persisted, and each is audited once through the write-behind audit writer.
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createAuditWriter, type AuditWriter } from '../control-plane/db/audit-writer.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import { insertSite } from '../control-plane/db/registry-store.js';
import { createMetrics } from '../control-plane/metrics.js';
import { Registry } from '../control-plane/registry/registry.js';
import { createRegistryTracker } from '../control-plane/registry/tracker.js';
import { DeviceKind } from '../proto/gen/hcp/v1/gateway.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describePg('registry tracker on PostgreSQL', (pg) => {
  let db: Db;
  let audit: AuditWriter;
  const log = pino({ level: 'silent' });
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
    audit = createAuditWriter({ db, log, flushMs: 20 });
  });
  afterAll(async () => {
    await audit?.close();
    await db?.close();
  });

  it('brings 300 sites online from 300 pokes with a few sweeps, persisted in one statement each, each audited once', async () => {
    const registry = new Registry({ staleAfterMs: 60_000 });
    const ids = Array.from({ length: 300 }, (_, i) => `tr-${String(i).padStart(3, '0')}`);
    for (const id of ids) {
      await insertSite(db, { id, name: id, region: 'ercot', powerCapacityKw: 0, timezone: 'UTC' });
      registry.addSite({ id, name: id, region: 'ercot', powerCapacityKw: 0 });
    }
    let sweeps = 0;
    const sweep = registry.sweep.bind(registry);
    registry.sweep = (now) => (sweeps++, sweep(now));
    const metrics = createMetrics();
    // the interval out of the way: every sweep here is a poke's
    const tracker = createRegistryTracker({ registry, db, log, metrics, intervalMs: 3_600_000, audit, pokeGapMs: 100 });
    try {
      for (const [i, id] of ids.entries()) {
        registry.hello({
          siteId: id, agentVersion: '1', agentSession: `s-${id}`, hostname: 'h',
          devices: [{ id: `asic-${id}-1`, kind: DeviceKind.DEVICE_KIND_ASIC, model: 'S21', endpoint: '', serial: '', ratedPowerW: 3500, ratedHashrateThs: 200, memoryTotalMib: 0, driver: 'sim' }],
        }, Date.now());
        tracker.poke(id);
        // Hellos arrive one by one over about half a second, as a fleet's do
        if (i % 2 === 1) await new Promise((r) => setTimeout(r, 1));
      }
      const online = async () => Number((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM facilities WHERE online AND id LIKE 'tr-%'`))[0]!.n);
      await waitFor(async () => (await online()) === 300, { message: 'every site online in the table' });
      await audit.flush();
      const audited = await db.query<{ subject: string; n: number }>(
        `SELECT subject, count(*)::int AS n FROM audit_log WHERE action = 'site.online' AND subject LIKE 'tr-%' GROUP BY subject`);
      expect(audited).toHaveLength(300);
      expect(audited.every((r) => r.n === 1)).toBe(true);
      // pokes over about half a second, one sweep per 100 ms at most: a handful, not one per Hello
      expect(sweeps).toBeLessThan(20);
      expect((await metrics.sitesOnline.get()).values[0]!.value).toBe(300);
    } finally {
      await tracker.close();
    }
  });
});
