// The claims service on real PostgreSQL: claims are checked (400 naming the field), stored,
// superseded, expired and released; they survive a restart; and the resolved desired state follows
// the precedence (grid > operator > … > economics).
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClaimsService, type ClaimsService } from '../control-plane/claims/service.js';
import { createAuditWriter, type AuditWriter } from '../control-plane/db/audit-writer.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import { HcpError } from '../control-plane/errors.js';
import { EventStream } from '../control-plane/events.js';
import { Registry } from '../control-plane/registry/registry.js';
import { usePgDatabase } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

const log = pino({ level: 'silent' });
const ASICS = ['asic-texas-1-00001', 'asic-texas-1-00002', 'asic-texas-1-00003'];

function registry(): Registry {
  const r = new Registry({ staleAfterMs: 10_000 });
  r.addSite({ id: 'texas-1', name: 'T1', region: 'ercot', powerCapacityKw: 100 });
  r.addSite({ id: 'texas-2', name: 'T2', region: 'ercot', powerCapacityKw: 100 });
  for (const id of ASICS) r.addDevice({ id, siteId: 'texas-1', kind: 'asic', model: 'Antminer S21 XP', driver: 'sim', endpoint: null, serial: null, ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: null, lastSeenMs: null });
  r.addDevice({ id: 'gpu-texas-1-0001', siteId: 'texas-1', kind: 'gpu', model: 'NVIDIA H100', driver: 'sim', endpoint: null, serial: null, ratedPowerW: 700, ratedHashrateThs: null, memoryTotalMib: 81559, lastSeenMs: null });
  r.addDevice({ id: 'asic-texas-2-00001', siteId: 'texas-2', kind: 'asic', model: 'Antminer S21 XP', driver: 'sim', endpoint: null, serial: null, ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: null, lastSeenMs: null });
  return r;
}

const off = { kind: 'mining' as const, enabled: false, powerTargetW: null };
const on = (powerTargetW: number | null = null) => ({ kind: 'mining' as const, enabled: true, powerTargetW });

async function refusal(p: Promise<unknown>): Promise<HcpError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(HcpError);
  return err as HcpError;
}

describe('claims service', () => {
  const pg = usePgDatabase('hcp_claims');
  let db: Db;
  let audit: AuditWriter;
  let claims: ClaimsService;
  let now = Date.parse('2026-12-01T12:00:00Z');
  const reg = registry();
  const events = new EventStream(log);
  const changes: string[] = [];
  events.on('claim.changed', (e) => changes.push(`${e.change}:${e.claim.id}`));

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    await migrate(db);
    await db.query(`INSERT INTO facilities (id, name, region) VALUES ('texas-1', 'T1', 'ercot'), ('texas-2', 'T2', 'ercot') ON CONFLICT DO NOTHING`);
    audit = createAuditWriter({ db, log, flushMs: 10 });
    claims = await createClaimsService({ db, registry: reg, audit, events, log, now: () => now, expiryCheckMs: 20 });
  });
  afterAll(async () => {
    await claims?.close();
    await audit?.close();
    await db?.close();
  });

  it('refuses unknown devices, GPUs, targets outside the model, past expiries and empty reasons, naming the field', async () => {
    const base = { siteId: 'texas-1', source: 'operator' as const, actor: 'key:alice', reason: 'test', expiresAtMs: null };
    const unknown = await refusal(claims.set({ ...base, deviceIds: [ASICS[0]!, 'asic-nowhere'], want: off }));
    expect(unknown.code).toBe('invalid_argument');
    expect(unknown.details).toMatchObject({ fields: [{ field: 'device_ids.1' }] });
    expect((await refusal(claims.set({ ...base, deviceIds: ['gpu-texas-1-0001'], want: off }))).details).toMatchObject({ fields: [{ field: 'device_ids.0' }] });
    expect((await refusal(claims.set({ ...base, deviceIds: ['asic-texas-2-00001'], want: off }))).message).toContain('not at site texas-1');
    const target = await refusal(claims.set({ ...base, deviceIds: [], want: on(9000) }));
    expect(target.details).toMatchObject({ fields: [{ field: 'power_target_w' }] });
    expect(target.message).toContain('1823–4009 W');
    expect((await refusal(claims.set({ ...base, deviceIds: [], want: on(1000) }))).reason).toBe('power_target_out_of_range');
    expect((await refusal(claims.set({ ...base, deviceIds: [], want: off, expiresAtMs: now - 1 }))).details).toMatchObject({ fields: [{ field: 'expires_at' }] });
    expect((await refusal(claims.set({ ...base, deviceIds: [], want: off, reason: '  ' }))).details).toMatchObject({ fields: [{ field: 'reason' }] });
    expect((await refusal(claims.set({ ...base, siteId: 'mars-1', deviceIds: [], want: off }))).code).toBe('not_found');
    expect(claims.list()).toEqual([]);
  });

  it('resolves by precedence: the grid over an operator over economics, and the later of two operators', async () => {
    const econ = await claims.set({ siteId: 'texas-1', source: 'economics', deviceIds: [], want: off, reason: 'price_curtail', actor: 'system:economics', expiresAtMs: null });
    expect(claims.desired('texas-1').asics.map((a) => [a.mining, a.rule])).toEqual(ASICS.map(() => [false, 'economics']));
    const alice = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[0]!, ASICS[1]!], want: on(), reason: 'keep mining', actor: 'key:alice', expiresAtMs: null });
    now += 1000;
    const bob = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[1]!], want: off, reason: 'board check', actor: 'key:bob', expiresAtMs: null });
    const d = claims.desired('texas-1').asics;
    expect(d.map((a) => [a.deviceId, a.mining, a.rule, a.claimId])).toEqual([
      [ASICS[0], true, 'operator', alice.id],
      [ASICS[1], false, 'operator', bob.id], // the later operator wins; alice's claim still stands for ASIC 1
      [ASICS[2], false, 'economics', econ.id],
    ]);
    expect(claims.get(alice.id)).toBeDefined();
    const grid = await claims.set({ siteId: 'texas-1', source: 'grid', deviceIds: [], want: off, reason: 'under-frequency 59.6 Hz', actor: 'system:grid', expiresAtMs: null });
    expect(claims.desired('texas-1').asics.every((a) => !a.mining && a.rule === 'grid')).toBe(true);
    await claims.release(grid.id, 'system:grid', 'recovered');
    expect(claims.desired('texas-1').asics[0]).toMatchObject({ mining: true, rule: 'operator' });
    await claims.releaseSource('operator', 'texas-1', 'key:alice', 'auto');
    await claims.release(econ.id, 'system:economics', 'done');
    expect(claims.desired('texas-1').asics.every((a) => a.mining && a.rule === 'default')).toBe(true);
    await audit.flush();
    const rows = await db.query<{ action: string; actor: string }>(`SELECT action, actor FROM audit_log WHERE subject IN ($1, $2) ORDER BY id`, [alice.id, bob.id]);
    expect(rows).toEqual([
      { action: 'claim.set', actor: 'key:alice' },
      { action: 'claim.set', actor: 'key:bob' },
      { action: 'claim.released', actor: 'key:alice' },
      { action: 'claim.released', actor: 'key:alice' },
    ]);
  });

  it('supersedes the claims of its source that it covers, and leaves the rest', async () => {
    const a = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[0]!], want: off, reason: 'one', actor: 'key:alice', expiresAtMs: null });
    const b = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[1]!, ASICS[2]!], want: off, reason: 'two', actor: 'key:alice', expiresAtMs: null });
    const all = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[1]!, ASICS[2]!, ASICS[0]!], want: on(), reason: 'all', actor: 'key:bob', expiresAtMs: null });
    expect(claims.get(a.id)).toBeUndefined();
    expect(claims.get(b.id)).toBeUndefined();
    const partial = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [ASICS[0]!], want: off, reason: 'partial', actor: 'key:bob', expiresAtMs: null });
    expect(claims.get(all.id)).toBeDefined();
    expect(changes).toContain(`released:${a.id}`);
    await claims.releaseSource('operator', 'texas-1', 'key:bob', 'cleanup');
    expect(claims.get(partial.id)).toBeUndefined();
  });

  it('never lets a listener see a replaced claim gone before its replacement is there', async () => {
    const grid = await claims.set({ siteId: 'texas-1', source: 'grid', deviceIds: [], want: off, reason: 'under-frequency', actor: 'system:grid', expiresAtMs: null });
    const seen: string[][] = [];
    const stop = events.on('claim.changed', () => seen.push(claims.desired('texas-1').asics.map((a) => `${a.mining}:${a.rule}`)));
    // the grid hands back the first ASIC: its claim shrinks to the other two, in one step
    await claims.set({ siteId: 'texas-1', source: 'grid', deviceIds: [ASICS[1]!, ASICS[2]!], want: off, reason: 'restoring', actor: 'system:grid', expiresAtMs: null, replaces: grid.id });
    stop();
    expect(seen.length).toBeGreaterThan(0);
    for (const s of seen) expect(s).toEqual(['true:default', 'false:grid', 'false:grid']);
    await claims.releaseSource('grid', 'texas-1', 'system:grid', 'recovered');
  });

  it('expires a claim and hands control back to the next claim down', async () => {
    const econ = await claims.set({ siteId: 'texas-1', source: 'economics', deviceIds: [], want: on(), reason: 'price_resume', actor: 'system:economics', expiresAtMs: null });
    const off2h = await claims.set({ siteId: 'texas-1', source: 'operator', deviceIds: [], want: off, reason: 'off for 2 h', actor: 'key:alice', expiresAtMs: now + 2 * 3600_000 });
    expect(claims.desired('texas-1').asics[0]).toMatchObject({ mining: false, rule: 'operator' });
    now += 2 * 3600_000;
    await waitFor(() => !claims.get(off2h.id), { message: 'the operator claim expired' });
    expect(claims.desired('texas-1').asics[0]).toMatchObject({ mining: true, rule: 'economics', claimId: econ.id });
    expect(changes).toContain(`expired:${off2h.id}`);
    const [row] = await db.query<{ end_reason: string; ended_by: string }>(`SELECT end_reason, ended_by FROM claims WHERE id = $1`, [off2h.id]);
    expect(row).toEqual({ end_reason: 'expired', ended_by: 'system:claims' });
  });

  it('keeps the live claims across a restart, and not the ended ones', async () => {
    const live = claims.list('texas-1').map((c) => c.id).sort();
    const kept = await claims.set({ siteId: 'texas-2', source: 'operator', deviceIds: [], want: off, reason: 'maintenance', actor: 'key:alice', expiresAtMs: now + 60_000 });
    await claims.close();
    claims = await createClaimsService({ db, registry: reg, audit, events, log, now: () => now, expiryCheckMs: 20 });
    expect(claims.list('texas-1').map((c) => c.id).sort()).toEqual(live);
    expect(claims.get(kept.id)).toMatchObject({ siteId: 'texas-2', reason: 'maintenance', expiresAtMs: now + 60_000, want: off });
    expect(claims.desired('texas-2').asics).toEqual([{ deviceId: 'asic-texas-2-00001', mining: false, powerTargetW: null, rule: 'operator', claimId: kept.id }]);
  });
});
