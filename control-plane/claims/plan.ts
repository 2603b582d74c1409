// The reconcile planner: given the site's desired state (resolve.ts) and what telemetry and the
// reconciler's own commands say, which set_mining commands to send now. Pure: the reconciler
// (reconciler.ts) feeds it and carries its outputs (progress, the starts window) to the next run.
//
// - Converged (desired off ⇔ observed sleeping; desired on ⇔ observed mining or ramping at the
//   wanted target, within 1 %): nothing is sent and the device's progress is forgotten.
// - Nothing is sent whose effect is already observed, nor while a command of ours heading to the
//   same want is in flight, nor to an offline device.
// - A device not converged after its expected time since the last send is retried with
//   exponential backoff; after maxAttempts it is divergent, with a reason, until its want changes.
// - Coordinated restart: stops and power changes go first and are never limited. Starts (desired
//   on, observed not mining) take the winning claim's precedence, then id, and are limited by the
//   site's ramp (Σ start kW over a sliding window ≤ rampKwPerMin, or one miner per window when
//   one alone is larger) and, with a capacity, keep observed draw + what the starts in progress
//   will still add + the new start ≤ capacity (the start-up inrush stays under capacity).
import type { AsicSpec, DesiredRule, DesiredState } from './model.js';
import { ruleRank } from './resolve.js';

export type ObservedMiningState = 'mining' | 'ramping' | 'sleeping' | 'other';

export interface ObservedAsic {
  online: boolean;
  state: ObservedMiningState;
  /** null = stock */
  powerTargetW: number | null;
  powerW: number;
}

/** one of the reconciler's commands that is not final yet */
export interface PendingCommand {
  commandId: string;
  deviceIds: string[];
  mining: boolean;
  powerTargetW: number | null;
  sentAtMs: number;
}

/** what the planner remembers of a device that has not converged */
export interface DeviceProgress {
  /** the want the attempts count towards (wantKey) */
  want: string;
  attempts: number;
  lastSentAtMs: number | null;
  /** the last command for this want failed with this reason code; null = none failed */
  lastFailure: string | null;
  /** given up on: why; null = still trying */
  divergent: string | null;
}

/** a start command sent, for the ramp window and the capacity check */
export interface StartRecord {
  deviceId: string;
  kw: number;
  atMs: number;
}

export interface PlanTimings {
  /** how long a start takes to show as mining or ramping (≈ the miner's boot time) */
  startMs: number;
  stopMs: number;
  retargetMs: number;
  /** sends per want before the device is divergent */
  maxAttempts: number;
  /** the n-th retry waits expected + backoffBaseMs × 2^(n-1) after the last send */
  backoffBaseMs: number;
}

export const DEFAULT_TIMINGS: PlanTimings = { startMs: 300_000, stopMs: 30_000, retargetMs: 60_000, maxAttempts: 3, backoffBaseMs: 5_000 };
/** the ramp limit is kW per minute, over a sliding minute */
export const RAMP_WINDOW_MS = 60_000;

export interface PlanInput {
  nowMs: number;
  desired: DesiredState;
  specs: ReadonlyMap<string, AsicSpec>;
  /** missing = never heard from (held offline) */
  observed: ReadonlyMap<string, ObservedAsic>;
  pending: readonly PendingCommand[];
  progress: ReadonlyMap<string, DeviceProgress>;
  /** the starts sent recently (the previous run's output) */
  starts: readonly StartRecord[];
  /** 0 = no limit */
  rampKwPerMin: number;
  /** 0 = none configured */
  capacityKw: number;
  /** what the site draws now as observed (GPUs and ASICs), kW */
  siteDrawKw: number;
  timings: PlanTimings;
  /** commands of ours that failed since the last run: device → reason code */
  failures?: ReadonlyMap<string, string>;
  /** the ramp window; RAMP_WINDOW_MS unless a test shortens it (the limit scales with it) */
  windowMs?: number;
}

export interface PlannedCommand {
  mining: boolean;
  powerTargetW: number | null;
  rule: DesiredRule;
  claimId: string | null;
  reason: string | null;
  deviceIds: string[];
  /** starts are ramp-limited; stops and power changes are not */
  kind: 'stop' | 'start' | 'retarget';
}

export type HoldReason = 'ramp_limit' | 'capacity' | 'backoff' | 'in_flight' | 'offline';

export interface PlanOutput {
  /** stops and power changes first, then starts in precedence order */
  commands: PlannedCommand[];
  progress: Map<string, DeviceProgress>;
  starts: StartRecord[];
  held: Array<{ deviceId: string; why: HoldReason }>;
  divergent: Array<{ deviceId: string; reason: string }>;
}

export const wantKey = (w: { mining: boolean; powerTargetW: number | null }): string => (w.mining ? `on:${w.powerTargetW ?? 'stock'}` : 'off');

const sameTarget = (want: number | null, seen: number | null): boolean =>
  want === null ? seen === null : seen !== null && Math.abs(seen - want) <= want * 0.01;

/** the device shows the state the want asks for */
export function isConverged(want: { mining: boolean; powerTargetW: number | null }, o: ObservedAsic): boolean {
  if (!want.mining) return o.state === 'sleeping';
  return (o.state === 'mining' || o.state === 'ramping') && sameTarget(want.powerTargetW, o.powerTargetW);
}

const startKw = (want: { powerTargetW: number | null }, spec: AsicSpec | undefined): number => (want.powerTargetW ?? spec?.ratedPowerW ?? 0) / 1000;

export function plan(input: PlanInput): PlanOutput {
  const { nowMs, desired, timings } = input;
  const windowMs = input.windowMs ?? RAMP_WINDOW_MS;
  const reasons = new Map(desired.groups.map((g) => [g.claimId, g.reason]));
  const progress = new Map<string, DeviceProgress>();
  const held: PlanOutput['held'] = [];
  const divergent: PlanOutput['divergent'] = [];
  const now: Array<{ d: DesiredState['asics'][number]; kind: PlannedCommand['kind'] }> = [];
  const startCandidates: Array<DesiredState['asics'][number]> = [];

  for (const d of desired.asics) {
    const key = wantKey(d);
    const prev = input.progress.get(d.deviceId);
    const p: DeviceProgress = prev && prev.want === key ? { ...prev } : { want: key, attempts: 0, lastSentAtMs: null, lastFailure: null, divergent: null };
    const failure = input.failures?.get(d.deviceId);
    if (failure && p.lastSentAtMs !== null) p.lastFailure = failure;
    const o = input.observed.get(d.deviceId);
    if (!o || !o.online) {
      progress.set(d.deviceId, p);
      held.push({ deviceId: d.deviceId, why: 'offline' });
      continue;
    }
    if (isConverged(d, o)) continue; // progress forgotten
    progress.set(d.deviceId, p);
    if (p.divergent) {
      divergent.push({ deviceId: d.deviceId, reason: p.divergent });
      continue;
    }
    if (input.pending.some((c) => c.deviceIds.includes(d.deviceId) && c.mining === d.mining && (!d.mining || c.powerTargetW === d.powerTargetW))) {
      held.push({ deviceId: d.deviceId, why: 'in_flight' });
      continue;
    }
    const kind: PlannedCommand['kind'] = !d.mining ? 'stop' : o.state === 'mining' || o.state === 'ramping' ? 'retarget' : 'start';
    if (p.lastSentAtMs !== null) {
      // a failed command is retried after the backoff alone; one that was applied gets the
      // device's expected time to show it first
      const expected = p.lastFailure ? 0 : kind === 'start' ? timings.startMs : kind === 'stop' ? timings.stopMs : timings.retargetMs;
      const due = p.lastSentAtMs + expected + timings.backoffBaseMs * 2 ** Math.max(0, p.attempts - 1);
      if (nowMs < due) {
        held.push({ deviceId: d.deviceId, why: 'backoff' });
        continue;
      }
      if (p.attempts >= timings.maxAttempts) {
        p.divergent = p.lastFailure
          ? `command failed: ${p.lastFailure} (sent ${p.attempts} times)`
          : `sent ${p.attempts} times; still observed ${o.state}${kind === 'retarget' ? ` at ${o.powerTargetW === null ? 'stock power' : `a ${o.powerTargetW} W target`}` : ''}`;
        divergent.push({ deviceId: d.deviceId, reason: p.divergent });
        continue;
      }
    }
    if (kind === 'start') startCandidates.push(d);
    else now.push({ d, kind });
  }

  // Coordinated restart. The window holds the starts of the last windowMs; the capacity check
  // also counts the starts still coming up (not yet observed mining), for what they will add.
  const windowStarts = input.starts.filter((s) => s.atMs > nowMs - windowMs);
  const coming = input.starts.filter((s) => {
    const o = input.observed.get(s.deviceId);
    return o?.online && o.state !== 'mining' && s.atMs > nowMs - 2 * timings.startMs;
  });
  // every start sent counts, two to one device at one instant too (its want changed again):
  // the window must hold what was sent, or the next run would allow more than the limit
  const kept = new Set<StartRecord>([...windowStarts, ...coming]);
  const limitKw = (input.rampKwPerMin * windowMs) / 60_000;
  let usedKw = windowStarts.reduce((kw, s) => kw + s.kw, 0);
  let startsInWindow = windowStarts.length;
  // per device still coming up, the largest start sent (it lands at one of them)
  const comingMax = new Map<string, number>();
  for (const s of coming) comingMax.set(s.deviceId, Math.max(s.kw, comingMax.get(s.deviceId) ?? 0));
  let comingKw = [...comingMax].reduce((kw, [id, k]) => kw + Math.max(0, k - (input.observed.get(id)?.powerW ?? 0) / 1000), 0);
  let rampBlocked = false;
  startCandidates.sort((a, b) => ruleRank(a.rule) - ruleRank(b.rule) || (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  const started: typeof startCandidates = [];
  for (const d of startCandidates) {
    const kw = startKw(d, input.specs.get(d.deviceId));
    if (input.rampKwPerMin > 0) {
      // in precedence order: once one start waits for the ramp, the later ones wait behind it
      const fits = kw > limitKw ? startsInWindow === 0 : usedKw + kw <= limitKw + 1e-9;
      if (rampBlocked || !fits) {
        rampBlocked = true;
        held.push({ deviceId: d.deviceId, why: 'ramp_limit' });
        continue;
      }
    }
    if (input.capacityKw > 0 && input.siteDrawKw + comingKw + kw > input.capacityKw + 1e-9) {
      held.push({ deviceId: d.deviceId, why: 'capacity' });
      continue;
    }
    usedKw += kw;
    startsInWindow += 1;
    comingKw += kw;
    started.push(d);
    const rec = { deviceId: d.deviceId, kw, atMs: nowMs };
    kept.add(rec);
  }

  const commands: PlannedCommand[] = [];
  const add = (d: DesiredState['asics'][number], kind: PlannedCommand['kind']) => {
    const p = progress.get(d.deviceId)!;
    p.attempts += 1;
    p.lastSentAtMs = nowMs;
    p.lastFailure = null;
    let c = commands.find((x) => x.kind === kind && x.mining === d.mining && x.powerTargetW === d.powerTargetW && x.rule === d.rule && x.claimId === d.claimId);
    if (!c) commands.push((c = { mining: d.mining, powerTargetW: d.powerTargetW, rule: d.rule, claimId: d.claimId, reason: reasons.get(d.claimId) ?? null, deviceIds: [], kind }));
    c.deviceIds.push(d.deviceId);
  };
  // stops before power changes; both before any start
  for (const x of now.filter((y) => y.kind === 'stop')) add(x.d, x.kind);
  for (const x of now.filter((y) => y.kind === 'retarget')) add(x.d, x.kind);
  for (const d of started) add(d, 'start');

  held.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
  return { commands, progress, starts: [...kept.values()].sort((a, b) => a.atMs - b.atMs), held, divergent };
}
