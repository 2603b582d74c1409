// Keeps the registry's online flags current and durable: sweeps on a timer (and at once when
// poked by a disconnect), persists transitions to facilities/resources, logs and audits site
// transitions, and updates the online gauges.
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import type { AuditWriter } from '../db/audit-writer.js';
import { audit, saveChanges } from '../db/registry-store.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from './registry.js';

export interface RegistryTracker {
  /** sweep soon (a stream closed, a last will arrived): that site's, or with none every site */
  poke(site?: string): void;
  /** sweep now and wait for the writes */
  sweep(): Promise<void>;
  close(): Promise<void>;
}

export function createRegistryTracker(o: {
  registry: Registry; db: Db; log: Logger; metrics: Metrics; intervalMs: number; now?: () => number;
  /**
   * the write-behind audit log (db/audit-writer.ts): a transition's entry goes in its batches.
   * Absent, each is an INSERT of its own, awaited in turn: 5,000 sites coming back after a restart
   * were 5,000 statements in a row on the main pool.
   */
  audit?: Pick<AuditWriter, 'write'>;
  /** the least time between two sweeps that pokes start (default 100 ms) */
  pokeGapMs?: number;
}): RegistryTracker {
  const now = o.now ?? Date.now;
  let running: Promise<void> | null = null;
  /** what the sweep after the running one covers: some sites, every one ('all'), or none */
  let again: Set<string> | 'all' | null = null;
  let closed = false;
  let online = o.registry.onlineCounts();
  /** `more` added to `into`, in place when it is a set */
  const merge = (into: Set<string> | 'all' | null, more: Set<string> | 'all'): Set<string> | 'all' => {
    if (into === 'all' || more === 'all') return 'all';
    if (!into) return more;
    for (const s of more) into.add(s);
    return into;
  };

  const runSweep = async (only: Set<string> | 'all') => {
    const changes = o.registry.sweep(now(), only === 'all' ? undefined : only);
    for (const c of changes) {
      if (c.type !== 'site') continue;
      o.log.info({ site: c.site.id, online: c.site.online, session: c.site.agentSession }, c.site.online ? 'site online' : 'site offline');
    }
    // Counted whole at every whole sweep (which also catches a device a Hello replaced with
    // another kind); a sweep of some sites moves the counts by what it changed. Counting 25,000
    // entries ten times a second was 5 % of the thread with 5,000 agents connecting.
    if (only === 'all') online = o.registry.onlineCounts();
    else {
      for (const c of changes) {
        const by = (c.type === 'site' ? c.site.online : c.device.online) ? 1 : -1;
        if (c.type === 'site') online.sites += by;
        else online[c.device.kind] += by;
      }
    }
    if (changes.length > 0 || only === 'all') {
      o.metrics.sitesOnline.set(online.sites);
      o.metrics.devicesOnline.set({ kind: 'gpu' }, online.gpu);
      o.metrics.devicesOnline.set({ kind: 'asic' }, online.asic);
    }
    if (changes.length === 0) return;
    try {
      await saveChanges(o.db, changes);
      for (const c of changes) {
        if (c.type !== 'site') continue;
        const action = c.site.online ? 'site.online' : 'site.offline';
        const details = { session: c.site.agentSession };
        if (o.audit) o.audit.write({ actor: 'system', action, subject: c.site.id, details });
        else await audit(o.db, 'system', action, c.site.id, details);
      }
    } catch (err) {
      o.log.error({ err }, 'could not persist registry changes');
    }
  };

  const sweepOf = (only: Set<string> | 'all'): Promise<void> => {
    if (running) {
      again = merge(again, only);
      return running;
    }
    running = runSweep(only).finally(() => {
      running = null;
      const next = again;
      again = null;
      if (next && !closed) void sweepOf(next);
    });
    return running;
  };
  const sweep = () => sweepOf('all');

  const timer = setInterval(() => void sweep(), o.intervalMs);
  timer.unref();

  // Pokes are coalesced: one sweep at most every pokeGapMs, the first at once, over the sites
  // poked. A fleet reconnecting pokes once per Hello, and 5,000 Hellos each sweeping 20,000
  // devices took the control plane's thread.
  const pokeGapMs = o.pokeGapMs ?? 100;
  let lastPokeSweep = -Infinity;
  let pokeTimer: NodeJS.Timeout | null = null;
  let poked: Set<string> | 'all' | null = null;
  const pokeSweep = () => {
    pokeTimer = null;
    lastPokeSweep = performance.now();
    const only = poked;
    poked = null;
    if (!closed && only) void sweepOf(only);
  };

  return {
    poke: (site) => {
      if (closed) return;
      poked = merge(poked, site === undefined ? 'all' : new Set([site]));
      pokeTimer ??= setTimeout(pokeSweep, Math.max(0, lastPokeSweep + pokeGapMs - performance.now()));
    },
    sweep,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      if (pokeTimer) clearTimeout(pokeTimer);
      await running;
    },
  };
}
