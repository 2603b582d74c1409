// What the replicas tell each other besides commands (those are commands/bus.ts's), over the same
// channel (notify.ts):
// - claims: a replica that stated or ended claims says which sites; the others re-read the live
//   claims (claims/service.ts reload), so the leader's reconciler resolves what an operator set on
//   any replica. They are re-read too when the channel (re)connects and when a replica gains the
//   lease, so a lost notice costs a delay, not a claim.
// - reconcile: an operator's call on a replica that does not lead (a curtail, a manual hold)
//   asks the leader to reconcile the sites now; the leader answers with the ids of the commands
//   that sent, and the asker follows them (bus.follow) so its caller can answer with them or wait
//   for them. With no leader answering within askTimeoutMs the asker answers with none: the
//   claims are stored, and the leader's next reconcile (a new leader's first) carries them out.
// - inventory: a replica that accepted agents' Hellos says which sites (once per turn); the others add the
//   sites and devices they do not know yet from the table (a device known keeps its live state).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { ClaimsService } from '../claims/service.js';
import type { Reconciler } from '../claims/reconciler.js';
import type { CommandBus } from '../commands/bus.js';
import type { CommandRecord } from '../commands/model.js';
import type { EventStream } from '../events.js';
import type { Db } from '../db/client.js';
import { loadDevices, loadSites } from '../db/registry-store.js';
import type { Registry } from '../registry/registry.js';
import type { Leadership } from './lease.js';
import { MAX_NOTICE_BYTES, type Notice, type Notifier } from './notify.js';

export interface ReplicaLinksDeps {
  notifier: Notifier;
  leadership: Pick<Leadership, 'leading' | 'onChange'>;
  claims: Pick<ClaimsService, 'reload'> & Partial<Pick<ClaimsService, 'durable'>>;
  reconciler: Pick<Reconciler, 'reconcileNow'>;
  bus: Pick<CommandBus, 'follow'>;
  events: EventStream;
  /** inventory learnt from the table */
  db?: Pick<Db, 'orm'>;
  registry?: Registry;
  log: Logger;
  /** how long a replica that does not lead waits for the leader's answer; default 5 s */
  askTimeoutMs?: number;
}

/** ids in chunks a notice takes */
function chunks(ids: string[]): string[][] {
  const out: string[][] = [[]];
  let bytes = 0;
  for (const id of ids) {
    if (bytes + id.length + 3 > MAX_NOTICE_BYTES - 200 && out[out.length - 1]!.length) {
      out.push([]);
      bytes = 0;
    }
    out[out.length - 1]!.push(id);
    bytes += id.length + 3;
  }
  return out;
}

export function createReplicaLinks(d: ReplicaLinksDeps) {
  const log = d.log;
  const askTimeoutMs = d.askTimeoutMs ?? 5000;
  let closed = false;

  // claims: said once per turn of the event loop, for every site changed in it, once their rows
  // are in (a claim is announced here while its row goes in: the others would re-read too soon)
  let changedSites: Set<string> | null = null;
  const offClaims = d.events.on('claim.changed', (e) => {
    if (e.remote || closed) return;
    if (!changedSites) {
      changedSites = new Set();
      setImmediate(async () => {
        const sites = [...(changedSites ?? [])];
        changedSites = null;
        await Promise.allSettled(sites.map((s) => d.claims.durable?.(s)));
        for (const part of chunks(sites)) void d.notifier.publish({ k: 'claims', sites: part }).catch((err) => log.warn({ err }, 'could not tell the other replicas of changed claims'));
      });
    }
    changedSites.add(e.claim.siteId);
  });
  let reloading: Promise<unknown> | null = null;
  let again = false;
  const reload = (): Promise<unknown> => {
    if (reloading) {
      again = true;
      return reloading;
    }
    reloading = (async () => {
      do {
        again = false;
        await d.claims.reload().catch((err) => log.warn({ err }, 'could not re-read the claims'));
      } while (again && !closed);
    })().finally(() => {
      reloading = null;
    });
    return reloading;
  };

  // inventory: what the table knows that the registry does not
  // A notice that comes while a read runs asks for another read after it: the running one may
  // have read the tables before that Hello's rows were in.
  let learning: Promise<void> | null = null;
  let learnAgain = false;
  const learn = (): Promise<void> => {
    const { db, registry } = d;
    if (!db || !registry || closed) return Promise.resolve();
    if (learning) {
      learnAgain = true;
      return learning;
    }
    return (learning = (async () => {
      do {
        learnAgain = false;
        for (const f of await loadSites(db)) {
          if (!registry.site(f.id)) registry.addSite({ id: f.id, name: f.name, region: f.region, powerCapacityKw: f.powerCapacityKw });
        }
        for (const dev of await loadDevices(db)) if (!registry.device(dev.id) && registry.site(dev.siteId)) registry.addDevice(dev);
      } while (learnAgain && !closed);
    })().catch((err) => log.warn({ err }, 'could not learn the inventory of other replicas')).finally(() => {
      learning = null;
      // a notice that came during a read that failed, or after the loop's last check
      if (learnAgain && !closed) void learn();
    }));
  };
  // said once per turn for every site whose Hello came in it (a fleet reconnecting is thousands
  // in a few seconds; each notice makes every other replica re-read the inventory)
  let openedSites: Set<string> | null = null;
  const offOpened = d.events.on('site.opened', (e) => {
    if (closed || typeof e.siteId !== 'string') return;
    if (!openedSites) {
      openedSites = new Set();
      setImmediate(() => {
        const sites = [...(openedSites ?? [])];
        openedSites = null;
        if (closed) return;
        for (const part of chunks(sites)) void d.notifier.publish({ k: 'inventory', sites: part }).catch((err) => log.warn({ err }, 'could not tell the other replicas of a hello'));
      });
    }
    openedSites.add(e.siteId);
  });

  // reconcile on the leader's behalf
  const asks = new Map<string, { parts: Map<number, string[]>; done: (ids: string[] | null) => void }>();
  const onNotice = (n: Notice) => {
    if (closed) return;
    if (n.k === 'claims') void reload();
    else if (n.k === 'inventory') void learn();
    else if (n.k === 'reconcile' && d.leadership.leading() && typeof n.ask === 'string' && Array.isArray(n.sites)) {
      const sites = (n.sites as unknown[]).filter((s): s is string => typeof s === 'string');
      void (async () => {
        await reload();
        const recs = await d.reconciler.reconcileNow(sites);
        const parts = chunks(recs.map((r) => r.id));
        for (const [i, ids] of parts.entries()) await d.notifier.publish({ k: 'reconciled', ask: n.ask, to: n.from, part: i, parts: parts.length, ids });
      })().catch((err) => log.error({ err, sites: sites.slice(0, 20) }, 'could not reconcile for another replica'));
    } else if (n.k === 'reconciled' && n.to === d.notifier.replica && typeof n.ask === 'string') {
      const a = asks.get(n.ask);
      if (!a || !Array.isArray(n.ids)) return;
      a.parts.set(Number(n.part), n.ids as string[]);
      if (a.parts.size >= Number(n.parts)) a.done([...a.parts.entries()].sort(([x], [y]) => x - y).flatMap(([, ids]) => ids));
    }
  };
  /** one ask of the leader, for sites that fit one notice; null when none answered in time */
  const askLeader = (sites: string[]) => new Promise<string[] | null>((resolve) => {
    const ask = randomBytes(8).toString('hex');
    const t = setTimeout(() => done(null), askTimeoutMs);
    t.unref();
    function done(v: string[] | null) {
      clearTimeout(t);
      asks.delete(ask);
      resolve(v);
    }
    asks.set(ask, { parts: new Map(), done });
    d.notifier.publish({ k: 'reconcile', ask, sites }).catch((err) => {
      log.warn({ err }, 'could not ask the leader to reconcile');
      done(null);
    });
  });
  const offs = [
    offClaims,
    offOpened,
    d.notifier.subscribe(onNotice),
    d.notifier.onListening(() => {
      void learn();
      void reload();
    }),
    d.leadership.onChange((leading) => {
      if (!leading) return;
      void learn();
      void reload();
    }),
  ];

  return {
    /** reconcile these sites now: here while leading, by the leader otherwise */
    async reconcileNow(sites: string[]): Promise<CommandRecord[]> {
      if (d.leadership.leading()) return d.reconciler.reconcileNow(sites);
      const answers = await Promise.all(chunks([...new Set(sites)]).map((part) => askLeader(part)));
      if (answers.some((a) => a === null)) {
        log.warn({ sites: sites.slice(0, 20) }, 'no leader answered: the claims are stored and the next reconcile carries them out');
      }
      return d.bus.follow(answers.flatMap((a) => a ?? []));
    },
    reload,
    learn,
    close(): void {
      closed = true;
      for (const off of offs) off();
      for (const a of asks.values()) a.done(null);
    },
  };
}
