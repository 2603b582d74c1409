// One reconciler per site: the I/O shell around the pure planner (plan.ts). Every intervalMs, and
// on poke(siteId) (a claim changed, the site connected, one of its commands finished), it reads
// the site's desired state (the claims service, via desiredOf), what telemetry reports (the
// registry) and where its own commands stand (the command bus), and submits the set_mining
// commands the plan asks for, as `system:reconciler` with the winning claim's source, id and
// reason in the details. Runs of one site are coalesced: one at a time, and pokes during a run
// make one more run after it.
//
// It also versions the site's desired state and pushes it down the agent's stream
// (proto/hcp/v1/gateway.proto DesiredState) when it changes and whenever the agent connects; the
// agent says which version it holds (desiredHeld). A version is max(previous + 1, now in ms), so
// it keeps growing across control-plane restarts without being stored.
//
// A singleton loop (ha/lease.ts): it runs only while its replica leads, each run under the
// lease's fence (ha/fence.ts), so a deposed leader's commands are refused.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';
import type { DesiredState as DesiredStateMessage } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import type { CommandBus, NewCommand } from '../commands/bus.js';
import { isFinal, type CommandRecord } from '../commands/model.js';
import type { Registry } from '../registry/registry.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';
import type { AsicSpec, DesiredState } from './model.js';
import {
  DEFAULT_TIMINGS,
  plan,
  RAMP_WINDOW_MS,
  type DeviceProgress,
  type HoldReason,
  type ObservedAsic,
  type ObservedMiningState,
  type PendingCommand,
  type PlanTimings,
  type StartRecord,
} from './plan.js';

export const RECONCILER_ACTOR = 'system:reconciler';
/** sites the periodic pass runs per turn of the event loop */
const PASS_SLICE = 100;

export interface ReconcilerDeps {
  registry: Pick<Registry, 'devices' | 'sites'>;
  bus: Pick<CommandBus, 'submit' | 'get' | 'watch'> & Partial<Pick<CommandBus, 'storeNow'>>;
  /** the site's resolved desired state now (claims/service.ts) */
  desiredOf: (siteId: string) => DesiredState;
  /**
   * The site's claims as the desired state has them, durable: a pending write of them, or null
   * (claims/service.ts durable). A run's commands and desired state wait for it; if it fails,
   * so does the run, and the claims' rollback pokes the site again.
   */
  claimsDurable?: (siteId: string) => Promise<unknown> | null;
  specsOf: (siteId: string) => readonly AsicSpec[];
  /** kW per minute; 0 = no limit */
  rampKwPerMin: (siteId: string) => number;
  /** kW; 0 = none configured */
  capacityKw: (siteId: string) => number;
  /** writes to the site's agent stream; false when it has none (sent again at connect) */
  sendDesired: (siteId: string, msg: DesiredStateMessage) => boolean;
  metrics: PromRegistry;
  log: Logger;
  /** how often every site is reconciled; default 2 s */
  intervalMs?: number;
  now?: () => number;
  timings?: Partial<PlanTimings>;
  /** the ramp window (the limit scales with it); RAMP_WINDOW_MS unless a test shortens it */
  rampWindowMs?: number;
  /** how long a command may take to reach a final state; default 60 s */
  commandDeadlineMs?: number;
  /** the sites reconciled; default every site the registry knows */
  sites?: () => string[];
  /** runs only while this replica leads; default: always */
  leader?: Pick<Leadership, 'leading' | 'fenced' | 'onChange'>;
}

export interface ReconcilerCommandView {
  commandId: string;
  deviceIds: string[];
  mining: boolean;
  powerTargetW: number | null;
  sentAtMs: number;
  state: string;
}

export interface ReconcilerView {
  siteId: string;
  /** when it last ran; null = not yet */
  atMs: number | null;
  observed: Array<{ deviceId: string } & ObservedAsic>;
  divergent: Array<{ deviceId: string; reason: string }>;
  held: Array<{ deviceId: string; why: HoldReason }>;
  inFlight: ReconcilerCommandView[];
  /** the desired state's version: made, delivered to the agent's stream, and held by the agent */
  desiredVersion: number | null;
  desiredSentVersion: number | null;
  desiredHeldVersion: number | null;
  ramp: { kwPerMin: number; windowMs: number; usedKw: number; starts: number; capacityKw: number };
}

interface SiteRun {
  progress: Map<string, DeviceProgress>;
  starts: StartRecord[];
  inflight: Map<string, PendingCommand>;
  failures: Map<string, string>;
  desiredKey: string | null;
  version: number;
  message: DesiredStateMessage | null;
  sentVersion: number | null;
  heldVersion: number | null;
  atMs: number | null;
  observed: Map<string, ObservedAsic>;
  held: ReconcilerView['held'];
  divergent: ReconcilerView['divergent'];
  running: Promise<void> | null;
  again: boolean;
  /** claim changes heard for the site, and how many of them the running run's desired state saw */
  claimChanges: number;
  claimChangesSeen: number;
  /** the last run's outcome: a caller who joined a run that failed asks for another */
  lastRunFailed: boolean;
  /** the run under way itself, without the runs asked for during it */
  current: Promise<void> | null;
}

export function observedState(s: MiningState): ObservedMiningState {
  if (s === MiningState.MINING_STATE_MINING) return 'mining';
  if (s === MiningState.MINING_STATE_RAMPING) return 'ramping';
  if (s === MiningState.MINING_STATE_SLEEPING) return 'sleeping';
  return 'other';
}

/** the desired state as the agent takes it: 0 W = stock */
export function toDesiredMessage(d: DesiredState, version: number, rampKwPerMin: number, capacityKw: number): DesiredStateMessage {
  return {
    version,
    generatedAtMs: d.atMs,
    asics: d.asics.map((a) => ({ deviceId: a.deviceId, mining: a.mining, powerTargetW: a.powerTargetW ?? 0, source: a.rule })),
    rampKwPerMin,
    capacityKw,
  };
}

export function createReconciler(deps: ReconcilerDeps) {
  const now = deps.now ?? Date.now;
  const timings: PlanTimings = { ...DEFAULT_TIMINGS, ...deps.timings };
  const windowMs = deps.rampWindowMs ?? RAMP_WINDOW_MS;
  const deadlineMs = deps.commandDeadlineMs ?? 60_000;
  const sitesOf = deps.sites ?? (() => deps.registry.sites().map((s) => s.id));
  const log = deps.log;
  const runs = new Map<string, SiteRun>();
  /** reconcileNow callers waiting for the commands their sites' runs send */
  const collectors = new Map<string, Set<CommandRecord[]>>();
  /** our commands not final yet → their site */
  const ours = new Map<string, string>();
  let closed = false;

  const commandsTotal = new Counter({
    name: 'hcp_reconciler_commands_total',
    help: 'set_mining commands the reconcilers sent, by the rule that decided them',
    labelNames: ['rule'] as const,
    registers: [deps.metrics],
  });
  // Both counted at scrape time (prom-client calls collect() then): counting them at every run
  // walked every site's run, so a fleet-wide curtail of 1,000 sites did 1,000,000 steps.
  const WHYS: HoldReason[] = ['ramp_limit', 'capacity', 'backoff', 'in_flight', 'offline'];
  new Gauge({
    name: 'hcp_reconciler_divergent_devices',
    help: 'ASICs that did not reach their desired state after every retry',
    registers: [deps.metrics],
    collect() {
      let divergent = 0;
      for (const r of runs.values()) divergent += r.divergent.length;
      this.set(divergent);
    },
  });
  new Gauge({
    name: 'hcp_reconciler_held_devices',
    help: 'ASICs not at their desired state that the reconcilers hold back, by why',
    labelNames: ['why'] as const,
    registers: [deps.metrics],
    collect() {
      const held = new Map<HoldReason, number>(WHYS.map((w) => [w, 0]));
      for (const r of runs.values()) for (const h of r.held) held.set(h.why, held.get(h.why)! + 1);
      for (const [why, n] of held) this.set({ why }, n);
    },
  });
  const runErrors = new Counter({
    name: 'hcp_reconciler_run_errors_total',
    help: 'Reconciler runs that failed (the next run tries again)',
    registers: [deps.metrics],
  });
  const stateOf = (siteId: string): SiteRun => {
    let r = runs.get(siteId);
    if (!r) {
      r = {
        progress: new Map(), starts: [], inflight: new Map(), failures: new Map(), desiredKey: null, version: 0, message: null,
        sentVersion: null, heldVersion: null, atMs: null, observed: new Map(), held: [], divergent: [], running: null, again: false,
        claimChanges: 0, claimChangesSeen: 0, lastRunFailed: false, current: null,
      };
      runs.set(siteId, r);
    }
    return r;
  };

  const observe = (siteId: string): { observed: Map<string, ObservedAsic>; drawKw: number } => {
    const observed = new Map<string, ObservedAsic>();
    let drawW = 0;
    for (const d of deps.registry.devices({ site: siteId })) {
      if (d.kind === 'gpu') {
        if (d.online && d.gpu) drawW += d.gpu.powerW;
        continue;
      }
      const a = d.asic;
      if (d.online && a) drawW += a.powerW;
      observed.set(d.id, {
        online: d.online && a !== null,
        state: a ? observedState(a.miningState) : 'other',
        powerTargetW: a && a.powerTargetW > 0 ? a.powerTargetW : null,
        powerW: a?.powerW ?? 0,
      });
    }
    return { observed, drawKw: drawW / 1000 };
  };

  /** our commands that ended since the last run leave the in-flight set; failures feed the plan */
  const settle = (r: SiteRun) => {
    for (const [id, c] of r.inflight) {
      const rec = deps.bus.get(id);
      if (rec && !isFinal(rec.state)) continue;
      r.inflight.delete(id);
      ours.delete(id);
      if (!rec) continue;
      if (rec.state === 'failed' || rec.state === 'expired') {
        for (const dev of c.deviceIds) r.failures.set(dev, rec.reasonCode ?? rec.state);
      }
    }
  };

  const pushDesired = (siteId: string, r: SiteRun) => {
    if (!r.message || r.sentVersion === r.version) return;
    if (deps.sendDesired(siteId, r.message)) {
      r.sentVersion = r.version;
      log.debug({ site: siteId, version: r.version }, 'desired state sent to the agent');
    }
  };

  // The desired states of runs that sent commands, pushed together on the next turn: the
  // commands' INSERT goes on the wire first, and a fleet's thousand pushes (30–40 ms of stream
  // writes) are made while PostgreSQL stores it. A site's commands still never overtake its
  // desired state: the bus calls pushDue for the site right before they go down its stream (once
  // the claims they wait for are durable: pushDesired sends a version once, so either may come first).
  const pushes = new Map<string, SiteRun>();
  const pushSoon = (siteId: string, r: SiteRun) => {
    if (pushes.size === 0) {
      setImmediate(() => {
        const due = [...pushes];
        pushes.clear();
        for (const [s, run] of due) pushDesired(s, run);
      });
    }
    pushes.set(siteId, r);
  };
  const pushDue = (siteId: string, r: SiteRun) => {
    pushes.delete(siteId);
    pushDesired(siteId, r);
  };

  const runOnce = async (siteId: string, r: SiteRun): Promise<void> => {
    const t = now();
    r.claimChangesSeen = r.claimChanges;
    const desired = deps.desiredOf(siteId);
    const ramp = deps.rampKwPerMin(siteId);
    const capacity = deps.capacityKw(siteId);
    const key = JSON.stringify([desired.asics.map((a) => [a.deviceId, a.mining, a.powerTargetW, a.rule]), ramp, capacity]);
    if (key !== r.desiredKey) {
      r.desiredKey = key;
      r.version = Math.max(r.version + 1, t);
      r.message = toDesiredMessage(desired, r.version, ramp, capacity);
    }

    settle(r);
    const { observed, drawKw } = observe(siteId);
    const failures = new Map(r.failures);
    const out = plan({
      nowMs: t, desired, specs: new Map(deps.specsOf(siteId).map((s) => [s.id, s])), observed, pending: [...r.inflight.values()],
      progress: r.progress, starts: r.starts, rampKwPerMin: ramp, capacityKw: capacity, siteDrawKw: drawKw, timings, failures, windowMs,
    });
    // asked for here, where it is used at once (a pending write left unused would be a rejection
    // nobody hears); still the write of the claims desiredOf read: all of this is synchronous
    const durable = deps.claimsDurable?.(siteId) ?? null;
    if (out.commands.length) {
      const items: NewCommand[] = out.commands.map((c) => ({
        id: `cmd-${randomUUID()}`,
        siteId,
        payload: { type: 'set_mining', enabled: c.mining, deviceIds: c.deviceIds, powerTargetW: c.mining ? c.powerTargetW : null },
        actor: RECONCILER_ACTOR,
        deadlineMs: t + deadlineMs,
        details: { source: c.rule, claim_id: c.claimId, reason: c.reason },
      }));
      // in flight before the submit returns: its result can come back before the await does
      items.forEach((it, i) => {
        const c = out.commands[i]!;
        r.inflight.set(it.id, { commandId: it.id, deviceIds: c.deviceIds, mining: c.mining, powerTargetW: c.powerTargetW, sentAtMs: t });
        ours.set(it.id, siteId);
      });
      // the desired state goes down the stream while the commands are stored: they, not it, are
      // what a curtail waits for, and the store is the longest wait of a run. It goes first: the
      // agent's converger (agent/desired/converger.ts) holds its ASICs to the desired state it
      // has, and when it was sent after the commands, the converger undid a grid release's
      // restarts (test/grid.e2e.test.ts).
      const storing = deps.bus.submit(items, { after: durable, beforeSend: () => pushDue(siteId, r) });
      if (durable) void durable.then(() => pushSoon(siteId, r), () => {});
      else pushSoon(siteId, r);
      try {
        const recs = await storing;
        for (const c of collectors.get(siteId) ?? []) c.push(...recs);
      } catch (err) {
        // nothing was stored: the next run plans again from the same progress
        for (const it of items) {
          r.inflight.delete(it.id);
          ours.delete(it.id);
        }
        throw err;
      }
      for (const c of out.commands) commandsTotal.inc({ rule: c.rule });
      // debug: a fleet-wide curtail is a thousand of these; each command is in the audit log
      // (command.submitted, with the claim's source and reason) and counted by rule
      log.debug(
        { site: siteId, commands: out.commands.map((c) => ({ kind: c.kind, mining: c.mining, powerTargetW: c.powerTargetW, source: c.rule, claim: c.claimId, devices: c.deviceIds.length })) },
        'reconciler sent mining commands',
      );
    } else if (durable) await durable.then(() => pushDesired(siteId, r));
    else pushDesired(siteId, r);
    for (const dev of failures.keys()) r.failures.delete(dev);
    const newlyDivergent = out.divergent.filter((d) => !r.divergent.some((x) => x.deviceId === d.deviceId));
    if (newlyDivergent.length) log.warn({ site: siteId, devices: newlyDivergent }, 'devices divergent: not at their desired state after every retry');
    r.progress = out.progress;
    r.starts = out.starts;
    r.atMs = t;
    r.observed = observed;
    r.held = out.held;
    r.divergent = out.divergent;
  };

  /** reconciles the site now (or once more after the run in progress); resolves when done */
  const leader = deps.leader ?? ALWAYS_LEADING;
  const poke = (siteId: string, nextTurn = false): Promise<void> => {
    if (closed || !leader.leading()) return Promise.resolve();
    const r = stateOf(siteId);
    if (r.running) {
      r.again = true;
      return r.running;
    }
    r.running = leader.fenced(async () => {
      if (nextTurn) await new Promise((res) => setImmediate(res));
      do {
        r.again = false;
        if (!leader.leading()) break;
        r.current = runOnce(siteId, r).then(
          () => {
            r.lastRunFailed = false;
          },
          (err: unknown) => {
            r.lastRunFailed = true;
            runErrors.inc();
            log.error({ err, site: siteId }, 'reconciler run failed');
          },
        );
        await r.current;
      } while (r.again && !closed);
    }).finally(() => {
      r.running = null;
    });
    return r.running;
  };

  const unwatch = deps.bus.watch((rec: CommandRecord) => {
    if (!isFinal(rec.state)) return;
    const site = ours.get(rec.id);
    if (site) void poke(site);
  });
  // The periodic pass, a slice of sites per turn of the event loop: a site's run is synchronous up
  // to its store (40–90 µs on this class of machine), and a thousand sites in one go held every
  // other callback, a fleet curtail's REST call among them, for up to 90 ms.
  let passing = false;
  const pass = async () => {
    if (passing) return;
    passing = true;
    try {
      const sites = sitesOf();
      for (let i = 0; i < sites.length && !closed; i += PASS_SLICE) {
        if (i > 0) await new Promise((r) => setImmediate(r));
        for (const s of sites.slice(i, i + PASS_SLICE)) void poke(s);
      }
    } finally {
      passing = false;
    }
  };
  const timer = setInterval(() => void pass(), deps.intervalMs ?? 2000);
  timer.unref();
  // A new term starts from what is known now: every agent gets the desired state again, and
  // every site is reconciled at once rather than at the next interval.
  const offLeader = leader.onChange((leading) => {
    if (!leading) return;
    for (const r of runs.values()) r.sentVersion = null;
    for (const s of sitesOf()) void poke(s);
  });

  return {
    poke,
    /**
     * Reconciles these sites now (after a claim changed: an operator's call, a grid trip) and
     * gives the commands that sent, so the caller can answer with them or wait for them.
     */
    /**
     * The site's claims changed (stored and in memory): reconciled. A caller of reconcileNow
     * right after need not wait for a second run when the one under way read these claims.
     */
    claimsChanged(siteId: string): Promise<void> {
      stateOf(siteId).claimChanges++;
      // on the next turn of the event loop: the claims' write, begun just before they were said,
      // is on the wire by then (a prepared statement, which postgres.js writes from a microtask:
      // db/client.ts QueryOptions), so PostgreSQL stores them while the runs plan. Run at once,
      // a fleet curtail's 1,000 plans (35–98 ms) came before the claims' INSERT was even sent,
      // and the commands' store waited for both.
      return poke(siteId, true);
    },
    async reconcileNow(siteIds: string[]): Promise<CommandRecord[]> {
      const got: CommandRecord[] = [];
      const sites = [...new Set(siteIds)];
      for (const s of sites) {
        let set = collectors.get(s);
        if (!set) collectors.set(s, (set = new Set()));
        set.add(got);
      }
      try {
        // A run under way that read the site's latest claims is the one asked for: a fleet
        // curtail's claim changes start every site's run, and a second run each doubled the work.
        const runs = sites.map((s) => {
          const r = stateOf(s);
          // (the claim events are said synchronously when claims change, before any caller of this)
          if (!(r.running && r.current && r.claimChangesSeen === r.claimChanges && !r.again)) return poke(s);
          // that run, not the ones its commands' results ask for after it (a fleet's results
          // arrive while its runs finish, and the REST answer waited for a second run a site)
          return r.current.then(() => (r.lastRunFailed ? poke(s) : undefined));
        });
        // every run these sites start now has submitted (a run is synchronous up to its store)
        deps.bus.storeNow?.();
        await Promise.all(runs);
      } finally {
        for (const s of sites) {
          const set = collectors.get(s);
          set?.delete(got);
          if (set?.size === 0) collectors.delete(s);
        }
      }
      // and what is in flight towards the sites' desired state already: sent by a run that a claim
      // change started before this call (another replica's claim, reloaded here and reconciled
      // at once, is sent before that replica's ask arrives)
      const have = new Set(got.map((c) => c.id));
      for (const s of sites) {
        for (const id of runs.get(s)?.inflight.keys() ?? []) {
          const rec = deps.bus.get(id);
          if (rec && !have.has(id)) got.push(rec);
        }
      }
      return got;
    },
    /** the agent's stream is up: it gets the desired state again, and the site is reconciled */
    siteConnected(siteId: string): void {
      const r = stateOf(siteId);
      r.sentVersion = null;
      pushDesired(siteId, r);
      void poke(siteId);
    },
    /** the agent holds this version (it said so on its stream) */
    desiredHeld(siteId: string, version: number): void {
      const r = stateOf(siteId);
      if (r.heldVersion === null || version > r.heldVersion) r.heldVersion = version;
    },
    /** what GET /api/v1/sites/:id/desired shows beside the claims and the desired state */
    view(siteId: string): ReconcilerView {
      const r = stateOf(siteId);
      const t = now();
      const inWindow = r.starts.filter((s) => s.atMs > t - windowMs);
      return {
        siteId,
        atMs: r.atMs,
        observed: [...r.observed].map(([deviceId, o]) => ({ deviceId, ...o })),
        divergent: r.divergent,
        held: r.held,
        inFlight: [...r.inflight.values()].map((c) => ({ ...c, state: deps.bus.get(c.commandId)?.state ?? 'pending' })),
        desiredVersion: r.version || null,
        desiredSentVersion: r.sentVersion,
        desiredHeldVersion: r.heldVersion,
        ramp: {
          kwPerMin: deps.rampKwPerMin(siteId), windowMs, usedKw: inWindow.reduce((kw, s) => kw + s.kw, 0), starts: inWindow.length,
          capacityKw: deps.capacityKw(siteId),
        },
      };
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      offLeader();
      unwatch();
      await Promise.all([...runs.values()].map((r) => r.running));
    },
  };
}

export type Reconciler = ReturnType<typeof createReconciler>;
