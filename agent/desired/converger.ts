// The desired state the agent holds, and the local converger that acts on it.
//
// The control plane sends its site's DesiredState after HelloAck and at every change; the agent
// keeps the newest version (an older one is ignored), in memory and in --state-dir, and answers
// DesiredStateHeld. Every sampling tick the converger compares each ASIC's reading with it:
//   - a miner mining or ramping while it is meant to sleep is put back to sleep at once, always
//     (a miner that reboots into mining while the site is curtailed);
//   - while the control plane is not connected (and after a restart, before the first
//     connection) it also starts miners meant to mine and sets their power targets. Starts are
//     limited to ramp_kw_per_min over a sliding minute (at least one miner a minute, even when one
//     miner alone exceeds it), and, with capacity_kw, keep the site's draw plus the starting
//     miners' rated power under capacity. While connected, starts and retargets are the control
//     plane reconciler's, which coordinates the site's ramp, so the two never fight.
//   - a miner the local grid trip slept (agent/grid/grid-trip.ts) is not started again until a
//     desired state newer than the trip arrives.
// Each action is logged and counted; a failed one is retried at a later tick with backoff.
import type { Logger } from 'pino';
import { DeviceKind, type DesiredAsic, type DesiredState } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import type { CommandableDriver, DeviceOp, DeviceOpResult } from '../drivers/driver.js';
import type { AgentMetrics } from '../metrics.js';
import { loadDesired, saveDesired, type HeldDesired } from './store.js';

/** the ramp limit's window */
export const RAMP_WINDOW_MS = 60_000;
/** after a start or retarget, a device's readings are left to settle this long before it is acted on again */
export const SETTLE_MS = 60_000;
const MIN_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 60_000;

export type DesiredAction = 'sleep' | 'start' | 'retarget';

export interface DesiredConvergerDeps {
  drivers: CommandableDriver[];
  /** true while the control plane's stream is open and acknowledged */
  connected(): boolean;
  /** DesiredStateHeld to the control plane; dropped when the stream is down (it resends on connect) */
  sendHeld(version: number): void;
  log: Logger;
  metrics: AgentMetrics;
  /** where the held state is kept across restarts; none = memory only */
  stateDir?: string;
  now?: () => number;
}

export interface DesiredStatus {
  /** the held version; 0 = none held */
  version: number;
  generated_at_ms: number;
  asics: number;
  /** ASICs whose last reading differs from the held state (mining, or power target) */
  differing: number;
  /** ASICs a grid trip slept that wait for a newer desired state */
  trip_held: number;
}

const isRunning = (s: MiningState) => s === MiningState.MINING_STATE_MINING || s === MiningState.MINING_STATE_RAMPING;
/** AsicSample.powerTargetW and DesiredAsic.powerTargetW: 0 = stock; a watt of rounding is the same target */
const sameTarget = (a: number, b: number) => Math.abs((a || 0) - (b || 0)) <= 1;

/** whether a reading differs from what the device should be doing */
export function differs(want: DesiredAsic, r: AsicSample): boolean {
  if (!want.mining) return isRunning(r.miningState);
  if (r.miningState === MiningState.MINING_STATE_SLEEPING || r.miningState === MiningState.MINING_STATE_FAULT) return true;
  return isRunning(r.miningState) && !sameTarget(r.powerTargetW, want.powerTargetW);
}

/**
 * The starts the limits allow, in order: within rampKwPerMin over the window (the first start of
 * an empty window always goes), and under capacityKw with what is drawn already.
 */
export function allowedStarts(
  candidates: Array<{ deviceId: string; kw: number }>,
  o: { rampKwPerMin: number; capacityKw: number; startedInWindowKw: number; startsInWindow: number; drawKw: number },
): string[] {
  let started = o.startedInWindowKw;
  let count = o.startsInWindow;
  let draw = o.drawKw;
  const out: string[] = [];
  for (const c of candidates) {
    if (o.rampKwPerMin > 0 && count > 0 && started + c.kw > o.rampKwPerMin + 1e-9) break;
    if (o.capacityKw > 0 && draw + c.kw > o.capacityKw + 1e-9) break;
    out.push(c.deviceId);
    started += c.kw;
    draw += c.kw;
    count++;
  }
  return out;
}

export function createDesiredConverger(d: DesiredConvergerDeps) {
  const now = d.now ?? Date.now;
  const owner = new Map<string, CommandableDriver>();
  const ratedW = new Map<string, number>();
  for (const drv of d.drivers) {
    for (const dev of drv.inventory()) {
      if (dev.kind !== DeviceKind.DEVICE_KIND_ASIC) continue;
      owner.set(dev.id, drv);
      ratedW.set(dev.id, dev.ratedPowerW);
    }
  }
  let held: HeldDesired | null = null;
  let want = new Map<string, DesiredAsic>();
  /** kW started in the ramp window, by time */
  let starts: Array<{ atMs: number; kw: number }> = [];
  const settling = new Map<string, number>();
  const failures = new Map<string, { count: number; retryAtMs: number }>();
  let lastDiffering = 0;
  let running: Promise<void> | null = null;

  function adopt(h: HeldDesired): void {
    held = h;
    want = new Map(h.desired.asics.filter((a) => owner.has(a.deviceId)).map((a) => [a.deviceId, a]));
    d.metrics.desiredVersion.set(h.desired.version);
  }

  function persist(): void {
    if (!d.stateDir || !held) return;
    try {
      saveDesired(d.stateDir, held);
    } catch (err) {
      d.log.error({ err, dir: d.stateDir }, 'could not save the desired state; it is held in memory only');
    }
  }

  if (d.stateDir) {
    try {
      const saved = loadDesired(d.stateDir);
      if (saved) {
        adopt(saved);
        d.log.info({ version: saved.desired.version, asics: want.size, tripHeld: saved.tripHeld.length }, 'desired state loaded from the state dir');
      }
    } catch (err) {
      d.log.error({ err, dir: d.stateDir }, 'could not read the saved desired state; waiting for the control plane');
    }
  }

  async function act(action: DesiredAction, ops: DeviceOp[]): Promise<DeviceOpResult[]> {
    const byDriver = new Map<CommandableDriver, DeviceOp[]>();
    for (const op of ops) {
      const drv = owner.get(op.deviceId)!;
      byDriver.set(drv, [...(byDriver.get(drv) ?? []), op]);
    }
    const settled = await Promise.all(
      [...byDriver].map(([drv, list]) =>
        drv.apply(list).catch((err: unknown): DeviceOpResult[] =>
          list.map((op) => ({ deviceId: op.deviceId, ok: false, code: 'driver_error', message: err instanceof Error ? err.message : String(err), state: { deviceId: op.deviceId, state: 'unknown', workloadId: '', powerTargetW: 0 } })),
        ),
      ),
    );
    const results = settled.flat();
    const t = now();
    for (const r of results) {
      d.metrics.desiredActions.inc({ action, outcome: r.ok ? 'ok' : 'failed' });
      if (r.ok) {
        failures.delete(r.deviceId);
        continue;
      }
      const f = failures.get(r.deviceId);
      const count = (f?.count ?? 0) + 1;
      failures.set(r.deviceId, { count, retryAtMs: t + Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (count - 1)) });
    }
    const ok = results.filter((r) => r.ok).map((r) => r.deviceId);
    const failed = results.filter((r) => !r.ok);
    if (ok.length) d.log.info({ action, version: held?.desired.version, devices: ok.length, first: ok[0] }, `desired state: ${action}`);
    if (failed.length) {
      d.log.warn({ action, devices: failed.length, first: failed[0]!.deviceId, code: failed[0]!.code, message: failed[0]!.message }, `desired state: ${action} failed; retried with backoff`);
    }
    return results;
  }

  async function converge(reading: { gpus: GpuSample[]; asics: AsicSample[] }): Promise<void> {
    const h = held;
    if (!h) return;
    const t = now();
    const ready = (id: string) => (failures.get(id)?.retryAtMs ?? 0) <= t;
    const tripHeld = new Set(h.tripHeld);
    const toSleep: DeviceOp[] = [];
    const toStart: Array<{ deviceId: string; kw: number; op: DeviceOp }> = [];
    const toRetarget: DeviceOp[] = [];
    let differing = 0;
    let drawW = reading.gpus.reduce((s, g) => s + g.powerW, 0);
    const local = !d.connected();
    for (const r of reading.asics) {
      const w = want.get(r.deviceId);
      const rated = ratedW.get(r.deviceId) ?? 0;
      const targetW = w?.mining && w.powerTargetW > 0 ? w.powerTargetW : rated;
      // a ramping miner is counted at the power it is ramping to, not what it draws yet
      drawW += r.miningState === MiningState.MINING_STATE_RAMPING ? Math.max(r.powerW, r.powerTargetW || rated) : r.powerW;
      if (!w) continue;
      if (differs(w, r)) differing++;
      else continue;
      if (!w.mining) {
        if (ready(r.deviceId)) toSleep.push({ kind: 'mining', deviceId: r.deviceId, enabled: false, powerTargetW: null });
        continue;
      }
      if (!local || tripHeld.has(r.deviceId) || !ready(r.deviceId) || (settling.get(r.deviceId) ?? 0) > t) continue;
      const op: DeviceOp = { kind: 'mining', deviceId: r.deviceId, enabled: true, powerTargetW: w.powerTargetW > 0 ? w.powerTargetW : null };
      if (r.miningState === MiningState.MINING_STATE_SLEEPING) toStart.push({ deviceId: r.deviceId, kw: targetW / 1000, op });
      else if (isRunning(r.miningState)) toRetarget.push(op);
      // a faulted miner is left to the operator: starting it again cannot help
    }
    lastDiffering = differing;
    d.metrics.desiredDiffering.set(differing);

    if (toSleep.length) await act('sleep', toSleep);
    if (toRetarget.length) {
      for (const r of await act('retarget', toRetarget)) if (r.ok) settling.set(r.deviceId, t + SETTLE_MS);
    }
    if (toStart.length) {
      starts = starts.filter((s) => s.atMs > t - RAMP_WINDOW_MS);
      const allowed = allowedStarts(toStart, {
        rampKwPerMin: h.desired.rampKwPerMin,
        capacityKw: h.desired.capacityKw,
        startedInWindowKw: starts.reduce((s, x) => s + x.kw, 0),
        startsInWindow: starts.length,
        drawKw: drawW / 1000,
      });
      if (allowed.length < toStart.length) {
        d.log.debug({ waiting: toStart.length - allowed.length, rampKwPerMin: h.desired.rampKwPerMin, capacityKw: h.desired.capacityKw }, 'desired state: starts held back by the ramp limit or capacity');
      }
      const chosen = new Set(allowed);
      const picked = toStart.filter((s) => chosen.has(s.deviceId));
      if (picked.length) {
        const kw = new Map(picked.map((s) => [s.deviceId, s.kw]));
        for (const r of await act('start', picked.map((s) => s.op))) {
          if (!r.ok) continue;
          starts.push({ atMs: t, kw: kw.get(r.deviceId)! });
          settling.set(r.deviceId, t + SETTLE_MS);
        }
      }
    }
  }

  return {
    /**
     * A desired state from the control plane: stored when newer than the one held, ignored when
     * older. Answers with the version held either way, so the control plane learns what the agent has.
     */
    offer(ds: DesiredState): 'stored' | 'same' | 'older' {
      const current = held?.desired.version ?? 0;
      let outcome: 'stored' | 'same' | 'older';
      if (held && ds.version < current) {
        outcome = 'older';
        d.log.warn({ version: ds.version, held: current }, 'desired state older than the one held: ignored');
      } else if (held && ds.version === current) {
        outcome = 'same';
      } else {
        const unknown = ds.asics.filter((a) => !owner.has(a.deviceId)).length;
        if (unknown) d.log.warn({ version: ds.version, unknown }, 'desired state names ASICs this agent does not have; they are ignored');
        // a newer state is the control plane's decision after the trip: the trip's hold ends
        adopt({ desired: ds, tripHeld: [] });
        for (const a of ds.asics) settling.delete(a.deviceId);
        persist();
        outcome = 'stored';
        d.log.info({ version: ds.version, asics: want.size, rampKwPerMin: ds.rampKwPerMin, capacityKw: ds.capacityKw }, 'desired state held');
      }
      d.metrics.desiredStates.inc({ outcome });
      d.sendHeld(held!.desired.version);
      return outcome;
    },
    /** a local grid trip slept these ASICs: they stay asleep until a newer desired state */
    tripped(deviceIds: string[]): void {
      if (!held || !deviceIds.length) return;
      held = { ...held, tripHeld: [...new Set([...held.tripHeld, ...deviceIds])] };
      persist();
    },
    /** one pass over a tick's readings; never throws, and a pass still running makes this one a no-op */
    converge(reading: { gpus: GpuSample[]; asics: AsicSample[] }): Promise<void> {
      if (running) return running;
      running = converge(reading)
        .catch((err: unknown) => d.log.error({ err }, 'desired state: converging failed'))
        .finally(() => (running = null));
      return running;
    },
    held: (): DesiredState | null => held?.desired ?? null,
    status: (): DesiredStatus => ({
      version: held?.desired.version ?? 0,
      generated_at_ms: held?.desired.generatedAtMs ?? 0,
      asics: want.size,
      differing: lastDiffering,
      trip_held: held?.tripHeld.length ?? 0,
    }),
    idle: (): Promise<void> => running ?? Promise.resolve(),
  };
}

export type DesiredConverger = ReturnType<typeof createDesiredConverger>;
