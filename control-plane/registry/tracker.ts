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
  /** sweep soon (a stream closed, a last will arrived) */
  poke(): void;
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
  let again = false;
  let closed = false;

  const runSweep = async () => {
    const changes = o.registry.sweep(now());
    for (const c of changes) {
      if (c.type !== 'site') continue;
      o.log.info({ site: c.site.id, online: c.site.online, session: c.site.agentSession }, c.site.online ? 'site online' : 'site offline');
    }
    const online = o.registry.onlineCounts();
    o.metrics.sitesOnline.set(online.sites);
    o.metrics.devicesOnline.set({ kind: 'gpu' }, online.gpu);
    o.metrics.devicesOnline.set({ kind: 'asic' }, online.asic);
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

  const sweep = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = runSweep().finally(() => {
      running = null;
      if (again && !closed) {
        again = false;
        void sweep();
      }
    });
    return running;
  };

  const timer = setInterval(() => void sweep(), o.intervalMs);
  timer.unref();

  // Pokes are coalesced: one sweep at most every pokeGapMs, the first at once. A sweep walks
  // every site and device; a fleet reconnecting pokes once per Hello, and 5,000 Hellos each
  // sweeping 20,000 devices took the control plane's thread.
  const pokeGapMs = o.pokeGapMs ?? 100;
  let lastPokeSweep = -Infinity;
  let pokeTimer: NodeJS.Timeout | null = null;
  const pokeSweep = () => {
    pokeTimer = null;
    lastPokeSweep = performance.now();
    if (!closed) void sweep();
  };

  return {
    poke: () => {
      if (closed || pokeTimer) return;
      pokeTimer = setTimeout(pokeSweep, Math.max(0, lastPokeSweep + pokeGapMs - performance.now()));
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
