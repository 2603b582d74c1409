// The claims service: the one place claims are stated, checked, stored, expired and resolved
// (the model is in model.ts, the rules in docs/claims.md). Live claims are held in memory and
// written through to the claims table, so they survive a restart. Every change is audited and
// announced on the event stream ('claim.changed'); the site's reconciler listens and closes the
// gap between the resolved desired state and what telemetry reports.
//
// A claim supersedes the earlier live claims of its own source and kind whose devices it covers
// (an operator's second "off" on a site replaces the first rather than piling up): they end,
// "replaced by <id>", and both stay in the audit log.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { endClaims, insertClaims, loadLiveClaims, type ClaimRow } from '../db/claims-store.js';
import { HcpError } from '../errors.js';
import type { EventStream } from '../events.js';
import type { Registry } from '../registry/registry.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { CLAIM_SOURCES, isLiveClaim, type AsicSpec, type Claim, type ClaimSource, type ClaimsApi, type ClaimWant, type DesiredState, type SiteSpec } from './model.js';
import { resolve } from './resolve.js';
import { asicSpecOf } from './specs.js';

export interface ClaimsServiceDeps {
  db: Db;
  registry: Registry;
  audit: AuditWriter;
  events: EventStream;
  log: Logger;
  now?: () => number;
  /** how often expiries are checked */
  expiryCheckMs?: number;
}

/** a claim as the caller states it */
export type NewClaim = Omit<Claim, 'id' | 'createdAtMs'> & { id?: string; replaces?: string | null };

const MAX_REASON = 500;
const CLAIMS_ACTOR = 'system:claims';

const field = (name: string, message: string, reason = 'validation_failed') =>
  new HcpError('invalid_argument', `${name}: ${message}`, reason, { fields: [{ field: name, message }] });

function toRow(c: Claim): ClaimRow {
  return { id: c.id, siteId: c.siteId, source: c.source, deviceIds: c.deviceIds, want: c.want as unknown as Record<string, unknown>, reason: c.reason, actor: c.actor, createdAtMs: c.createdAtMs, expiresAtMs: c.expiresAtMs };
}

function fromRow(r: ClaimRow): Claim | null {
  if (!(CLAIM_SOURCES as readonly string[]).includes(r.source)) return null;
  const w = r.want as { kind?: unknown; enabled?: unknown; powerTargetW?: unknown; capKw?: unknown };
  let want: ClaimWant;
  if (w.kind === 'mining' && typeof w.enabled === 'boolean') want = { kind: 'mining', enabled: w.enabled, powerTargetW: typeof w.powerTargetW === 'number' ? w.powerTargetW : null };
  else if (w.kind === 'site_cap' && typeof w.capKw === 'number') want = { kind: 'site_cap', capKw: w.capKw };
  else return null;
  return { id: r.id, siteId: r.siteId, source: r.source as ClaimSource, deviceIds: r.deviceIds, want, reason: r.reason, actor: r.actor, createdAtMs: r.createdAtMs, expiresAtMs: r.expiresAtMs };
}

/** the devices a claim names, for "covers": null = every ASIC of the site */
const named = (c: Claim): Set<string> | null => (c.deviceIds.length ? new Set(c.deviceIds) : null);
function covers(newer: Claim, older: Claim): boolean {
  if (newer.source !== older.source || newer.siteId !== older.siteId || newer.want.kind !== older.want.kind) return false;
  const n = named(newer);
  if (n === null) return true;
  const o = named(older);
  return o !== null && [...o].every((id) => n.has(id));
}

export async function createClaimsService(d: ClaimsServiceDeps) {
  const now = d.now ?? Date.now;
  const live = new Map<string, Claim>();
  const bySite = new Map<string, Map<string, Claim>>();
  const put = (c: Claim) => {
    live.set(c.id, c);
    let m = bySite.get(c.siteId);
    if (!m) bySite.set(c.siteId, (m = new Map()));
    m.set(c.id, c);
  };
  const drop = (id: string) => {
    const c = live.get(id);
    if (!c) return;
    live.delete(id);
    bySite.get(c.siteId)?.delete(id);
  };

  for (const r of await loadLiveClaims(d.db)) {
    const c = fromRow(r);
    if (c) put(c);
    else d.log.error({ claim: r.id, source: r.source }, 'stored claim not understood; ignored');
  }
  d.log.info({ live: live.size }, 'claims loaded');

  // A site's spec is asked for three times in one synchronous stretch of a curtail (the claim's
  // check, the desired state, the reconciler's plan), for every site: it is kept until the
  // stretch ends. Nothing changes the registry within one (its changes are their own callbacks).
  const specs = new Map<string, SiteSpec>();
  function specOf(siteId: string): SiteSpec {
    let spec = specs.get(siteId);
    if (!spec) {
      if (specs.size === 0) queueMicrotask(() => specs.clear());
      specs.set(siteId, (spec = specNow(siteId)));
    }
    return spec;
  }
  function specNow(siteId: string): SiteSpec {
    const s = d.registry.site(siteId);
    const devices = d.registry.devices({ site: siteId });
    const asics: AsicSpec[] = devices.filter((x) => x.kind === 'asic').map((x) => asicSpecOf(x.id, x.model, x.ratedPowerW, x.ratedHashrateThs)).sort((a, b) => (a.id < b.id ? -1 : 1));
    const gpuW = devices.reduce((w, x) => w + (x.kind === 'gpu' && x.online && x.gpu ? x.gpu.powerW : 0), 0);
    return { siteId, capacityKw: s?.powerCapacityKw ?? 0, gpuKw: gpuW / 1000, asics };
  }

  /** checks one claim against the site and its models; throws HcpError naming the field */
  function check(c: NewClaim, at: number, prefix = ''): void {
    const f = (name: string) => `${prefix}${name}`;
    if (!(CLAIM_SOURCES as readonly string[]).includes(c.source)) throw field(f('source'), `must be one of ${CLAIM_SOURCES.join(', ')}`);
    const site = d.registry.site(c.siteId);
    if (!site) throw new HcpError('not_found', `site ${JSON.stringify(c.siteId)} not found`, 'unknown_site', { fields: [{ field: f('site'), message: 'unknown site' }] });
    if (!c.reason?.trim()) throw field(f('reason'), 'is required');
    if (c.reason.length > MAX_REASON) throw field(f('reason'), `at most ${MAX_REASON} characters`);
    if (c.expiresAtMs !== null && (!Number.isFinite(c.expiresAtMs) || c.expiresAtMs <= at)) throw field(f('expires_at'), 'is in the past');
    const spec = specOf(c.siteId);
    const byId = new Map(spec.asics.map((a) => [a.id, a]));
    const seen = new Set<string>();
    c.deviceIds.forEach((id, i) => {
      if (!byId.has(id)) {
        const dev = d.registry.device(id);
        const why = !dev ? 'unknown device' : dev.siteId !== c.siteId ? `not at site ${c.siteId}` : 'a GPU; claims apply to ASICs';
        throw field(f(`device_ids.${i}`), `${id}: ${why}`, 'unknown_device');
      }
      if (seen.has(id)) throw field(f(`device_ids.${i}`), `${id} is listed twice`);
      seen.add(id);
    });
    if (c.want.kind === 'mining') {
      const t = c.want.powerTargetW;
      if (t !== null) {
        if (!c.want.enabled) throw field(f('power_target_w'), 'a power target needs enabled: true');
        const covered = c.deviceIds.length ? c.deviceIds.map((id) => byId.get(id)!) : spec.asics;
        for (const a of covered) {
          if (!Number.isFinite(t) || t < a.minPowerW || t > a.maxPowerW) {
            throw field(f('power_target_w'), `${t} W is outside ${a.id}'s range, ${a.minPowerW}–${a.maxPowerW} W`, 'power_target_out_of_range');
          }
        }
      }
    } else if (!Number.isFinite(c.want.capKw) || c.want.capKw < 0) {
      throw field(f('cap_kw'), 'must be a number of kW, 0 or more');
    }
  }

  function announce(claim: Claim, change: 'set' | 'released' | 'expired', remote = false): void {
    d.events.emit('claim.changed', remote ? { claim, change, remote } : { claim, change });
  }
  /** ids this replica ended lately: a reload that read them before they ended does not bring them back */
  const endedHere = new Map<string, number>();

  // Claims being written: in memory and announced already, so the reconcilers plan while the
  // row goes in; the commands they plan, and the desired state, wait for it (reconciler.ts
  // claimsDurable). A failed write takes the claims out of memory again.
  /** claim id → its write */
  const writing = new Map<string, Promise<void>>();
  /** site → the writes of its claims under way */
  const siteWrites = new Map<string, Set<Promise<void>>>();
  const durable = (siteId: string): Promise<unknown> | null => {
    const w = siteWrites.get(siteId);
    return w?.size ? Promise.all(w) : null;
  };
  /** waits for the writes of these claims; a claim whose write failed is no longer live */
  const written = async (ids: string[]): Promise<void> => {
    const w = ids.map((id) => writing.get(id)).filter((p) => p !== undefined);
    if (w.length) await Promise.allSettled(w);
  };

  /** ends live claims (stored first), audits and announces each */
  async function end(ids: string[], by: string, reason: string, change: 'released' | 'expired'): Promise<Claim[]> {
    await written(ids);
    const claims = ids.map((id) => live.get(id)).filter((c): c is Claim => c !== undefined);
    if (!claims.length) return [];
    const at = now();
    await endClaims(d.db, claims.map((c) => c.id), by, reason, at);
    for (const c of claims) {
      endedHere.set(c.id, at);
      drop(c.id);
      d.audit.write({ actor: by, action: `claim.${change}`, subject: c.id, details: { site: c.siteId, source: c.source, reason, claim_reason: c.reason }, timeMs: at });
      announce(c, change);
    }
    return claims;
  }

  async function setMany(items: NewClaim[]): Promise<Claim[]> {
    const at = now();
    items.forEach((c, i) => check(c, at, items.length > 1 ? `claims.${i}.` : ''));
    const made: Claim[] = items.map((c) => ({
      id: c.id ?? `clm-${randomUUID()}`, siteId: c.siteId, source: c.source, deviceIds: [...new Set(c.deviceIds)], want: c.want,
      reason: c.reason.trim(), actor: c.actor, createdAtMs: at, expiresAtMs: c.expiresAtMs,
    }));
    // what each new claim supersedes: its `replaces`, and the older claims of its source it covers
    const ended = new Map<string, string>();
    for (const [i, c] of made.entries()) {
      const rep = items[i]!.replaces;
      if (rep && live.has(rep)) ended.set(rep, c.id);
      for (const o of bySite.get(c.siteId)?.values() ?? []) if (covers(c, o)) ended.set(o.id, c.id);
    }
    const endedIds = [...ended.keys()];
    const write = (async () => {
      await insertClaims(d.db, made.map(toRow));
      if (endedIds.length) {
        // a claim replaced while its own row was going in: that row first
        await written(endedIds);
        await endClaims(d.db, endedIds, CLAIMS_ACTOR, 'replaced', at);
      }
    })();
    const sites = [...new Set([...made.map((c) => c.siteId), ...endedIds.map((id) => live.get(id)!.siteId)])];
    for (const c of made) writing.set(c.id, write);
    for (const s of sites) {
      let w = siteWrites.get(s);
      if (!w) siteWrites.set(s, (w = new Set()));
      w.add(write);
    }
    // memory first, in one step, then the announcements: a listener (the reconciler) resolves
    // at once, and must never see the old claims gone before the new ones are there
    const replaced = [...ended].map(([old, by]) => ({ o: live.get(old)!, by }));
    for (const c of made) put(c);
    for (const { o } of replaced) {
      endedHere.set(o.id, at);
      drop(o.id);
    }
    for (const { o } of replaced) announce(o, 'released');
    for (const c of made) announce(c, 'set');
    try {
      await write;
    } catch (err) {
      // as the table has it: the new claims never were, the ones they replaced still stand
      for (const c of made) {
        if (!live.has(c.id)) continue;
        drop(c.id);
        announce(c, 'released');
      }
      for (const { o } of replaced) {
        if (live.has(o.id) || endedHere.get(o.id) !== at) continue;
        endedHere.delete(o.id);
        put(o);
        announce(o, 'set');
      }
      throw err;
    } finally {
      for (const c of made) writing.delete(c.id);
      for (const s of sites) {
        const w = siteWrites.get(s);
        w?.delete(write);
        if (w?.size === 0) siteWrites.delete(s);
      }
    }
    for (const { o, by } of replaced) {
      d.audit.write({ actor: made.find((m) => m.id === by)!.actor, action: 'claim.replaced', subject: o.id, details: { site: o.siteId, source: o.source, by }, timeMs: at });
    }
    for (const c of made) {
      d.audit.write({
        actor: c.actor, action: 'claim.set', subject: c.id,
        details: { site: c.siteId, source: c.source, want: c.want, devices: c.deviceIds.length || 'all', device_ids: c.deviceIds.slice(0, 50), reason: c.reason, expires_at: c.expiresAtMs ? new Date(c.expiresAtMs).toISOString() : null },
        timeMs: at,
      });
    }
    return made;
  }

  let expiring: Promise<unknown> | null = null;
  const expiryTimer = setInterval(() => {
    if (expiring) return;
    const at = now();
    const due = [...live.values()].filter((c) => !isLiveClaim(c, at)).map((c) => c.id);
    if (!due.length) return;
    expiring = end(due, CLAIMS_ACTOR, 'expired', 'expired')
      .then((cs) => cs.length && d.log.info({ claims: cs.map((c) => c.id) }, 'claims expired'))
      .catch((err) => d.log.error({ err }, 'could not end expired claims'))
      .finally(() => {
        expiring = null;
      });
  }, d.expiryCheckMs ?? 250);
  expiryTimer.unref();

  const list = (siteId?: string): Claim[] => {
    const at = now();
    const src = siteId ? [...(bySite.get(siteId)?.values() ?? [])] : [...live.values()];
    return src.filter((c) => isLiveClaim(c, at)).sort((a, b) => a.createdAtMs - b.createdAtMs || (a.id < b.id ? -1 : 1));
  };
  const desired = (siteId: string): DesiredState => resolve(list(siteId), specOf(siteId), now());

  /** observed as the claim wants: asleep, or mining at its target (1 %) */
  function observedAsWanted(deviceId: string, want: DesiredState['asics'][number]): boolean {
    const a = d.registry.device(deviceId)?.asic;
    if (!a) return false;
    if (!want.mining) return a.miningState === MiningState.MINING_STATE_SLEEPING;
    if (a.miningState !== MiningState.MINING_STATE_MINING && a.miningState !== MiningState.MINING_STATE_RAMPING) return false;
    if (want.powerTargetW === null) return true;
    return a.powerTargetW > 0 && Math.abs(a.powerTargetW - want.powerTargetW) <= want.powerTargetW * 0.01;
  }

  /**
   * Several control planes (docs/reliability.md): the live claims as the table has them now,
   * another replica having stated or ended some. New ones are put and gone ones dropped, each
   * announced with remote: true (not audited again: the replica that made the change did).
   */
  async function reload(): Promise<number> {
    const before = new Set(live.keys());
    const rows = await loadLiveClaims(d.db);
    const cutoff = now() - 60_000;
    for (const [id, at] of endedHere) if (at < cutoff) endedHere.delete(id);
    const inTable = new Set(rows.map((r) => r.id));
    const added: Claim[] = [];
    for (const r of rows) {
      if (live.has(r.id) || endedHere.has(r.id)) continue;
      const c = fromRow(r);
      if (c) added.push(c);
    }
    // (a claim whose row is still going in is not gone)
    const gone = [...before].filter((id) => !inTable.has(id) && live.has(id) && !writing.has(id)).map((id) => live.get(id)!);
    for (const c of added) put(c);
    for (const c of gone) drop(c.id);
    for (const c of gone) announce(c, 'released', true);
    for (const c of added) announce(c, 'set', true);
    return added.length + gone.length;
  }

  const api: ClaimsApi & {
    reload: typeof reload;
    setMany: typeof setMany;
    durable: typeof durable;
    specOf: typeof specOf;
    get(id: string): Claim | undefined;
    close(): Promise<void>;
  } = {
    set: async (c) => (await setMany([c]))[0]!,
    reload,
    setMany,
    durable,
    async release(id, actor, reason) {
      const [c] = await end([id], actor, reason, 'released');
      return c ?? null;
    },
    async releaseSource(source, siteId, actor, reason) {
      const ids = [...live.values()].filter((c) => c.source === source && (siteId === null || c.siteId === siteId)).map((c) => c.id);
      return end(ids, actor, reason, 'released');
    },
    list,
    get: (id) => live.get(id),
    desired,
    specOf,
    waitConverged(claimId, timeoutMs) {
      const check = () => {
        const c = live.get(claimId);
        if (!c) return true; // ended: nothing left for it to move
        const ds = desired(c.siteId).asics.filter((a) => a.claimId === claimId);
        return ds.every((a) => observedAsWanted(a.deviceId, a));
      };
      if (check()) return Promise.resolve(true);
      return new Promise<boolean>((done) => {
        const t0 = now();
        const timer = setInterval(() => {
          if (check()) {
            clearInterval(timer);
            done(true);
          } else if (now() - t0 >= timeoutMs) {
            clearInterval(timer);
            done(false);
          }
        }, 100);
        timer.unref();
      });
    },
    async close() {
      clearInterval(expiryTimer);
      await expiring;
    },
  };
  return api;
}

export type ClaimsService = Awaited<ReturnType<typeof createClaimsService>>;
