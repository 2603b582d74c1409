// Grid under-frequency response per region, a pure state machine (no I/O).
//
//   normal ──hz ≤ trip──▶ tripped ──hz ≥ recover──▶ recovering ──held hold_s──▶ restoring
//     ▲                     ▲  ▲                        │                         │ stage k of N
//     │                     │  └──────hz < recover──────┘                         │ every stage_s
//     │                     └──────────────────────hz ≤ trip (curtail again)──────┤
//     └────────────────────────────────────────────after stage N──────────────────┘
//
// ERCOT's under-frequency relays trip load at 59.7 Hz (FFR: full response in 15 cycles). The
// control plane curtails every ASIC of the region at once (the agents' local trips usually got
// there first); it brings them back only after the frequency has held a recovery level, and then
// in stages, so thousands of miners starting at once do not pull the frequency down again.
// While restoring, a reading below the recovery level pauses (back to recovering) and one at
// the trip level curtails again.

export interface GuardConfig {
  tripHz: number;
  recoverHz: number;
  holdS: number;
  stages: number;
  stageIntervalS: number;
}

export const DEFAULT_GUARD: GuardConfig = { tripHz: 59.7, recoverHz: 59.95, holdS: 60, stages: 4, stageIntervalS: 30 };

export type RegionPhase =
  | { phase: 'normal' }
  | { phase: 'tripped'; sinceMs: number; lowestHz: number }
  | { phase: 'recovering'; sinceMs: number; lowestHz: number; stagesDone: number }
  | { phase: 'restoring'; stage: number; nextAtMs: number; lowestHz: number };

export type GuardAction =
  | { kind: 'curtail'; region: string; hz: number }
  /** bring back stage `stage` (1-based) of `of` of what the region's sites had mining */
  | { kind: 'restore'; region: string; stage: number; of: number }
  | { kind: 'restored'; region: string; lowestHz: number };

export function checkGuardConfig(c: GuardConfig): string[] {
  const p: string[] = [];
  if (!(c.tripHz > 40 && c.tripHz < 70)) p.push(`trip_hz ${c.tripHz} is not a mains frequency threshold`);
  if (!(c.recoverHz > c.tripHz)) p.push(`recover_hz ${c.recoverHz} must be above trip_hz ${c.tripHz}`);
  if (!(c.holdS >= 0)) p.push(`hold_s ${c.holdS} must be ≥ 0`);
  if (!(Number.isInteger(c.stages) && c.stages >= 1)) p.push(`stages ${c.stages} must be a whole number ≥ 1`);
  if (!(c.stageIntervalS >= 0)) p.push(`stage_interval_s ${c.stageIntervalS} must be ≥ 0`);
  return p;
}

export function createFrequencyGuard(cfg: GuardConfig = DEFAULT_GUARD) {
  const problems = checkGuardConfig(cfg);
  if (problems.length) throw new RangeError(problems.join('; '));
  const regions = new Map<string, RegionPhase>();
  const last = new Map<string, { hz: number; atMs: number }>();
  const get = (r: string): RegionPhase => regions.get(r) ?? { phase: 'normal' };

  function restoreStep(region: string, s: Extract<RegionPhase, { phase: 'restoring' }>, nowMs: number, out: GuardAction[]): void {
    while (s.nextAtMs <= nowMs) {
      out.push({ kind: 'restore', region, stage: s.stage, of: cfg.stages });
      if (s.stage >= cfg.stages) {
        regions.set(region, { phase: 'normal' });
        out.push({ kind: 'restored', region, lowestHz: s.lowestHz });
        return;
      }
      s.stage += 1;
      s.nextAtMs += cfg.stageIntervalS * 1000;
    }
  }

  function advance(region: string, nowMs: number, out: GuardAction[]): void {
    const s = get(region);
    if (s.phase === 'recovering' && nowMs - s.sinceMs >= cfg.holdS * 1000) {
      const r: Extract<RegionPhase, { phase: 'restoring' }> = { phase: 'restoring', stage: s.stagesDone + 1, nextAtMs: nowMs, lowestHz: s.lowestHz };
      regions.set(region, r);
      restoreStep(region, r, nowMs, out);
    } else if (s.phase === 'restoring') {
      restoreStep(region, s, nowMs, out);
    }
  }

  return {
    /** a frequency reading for a region; returns what to do now */
    reading(region: string, hz: number, nowMs: number): GuardAction[] {
      last.set(region, { hz, atMs: nowMs });
      const out: GuardAction[] = [];
      const s = get(region);
      const lowest = s.phase === 'normal' ? hz : Math.min(s.lowestHz, hz);
      if (hz <= cfg.tripHz) {
        if (s.phase !== 'tripped') out.push({ kind: 'curtail', region, hz });
        regions.set(region, { phase: 'tripped', sinceMs: s.phase === 'tripped' ? s.sinceMs : nowMs, lowestHz: lowest });
        return out;
      }
      if (s.phase === 'normal') return out;
      if (hz < cfg.recoverHz) {
        // between trip and recovery: hold what stands, and start the hold timer over
        if (s.phase === 'restoring') regions.set(region, { phase: 'recovering', sinceMs: Number.POSITIVE_INFINITY, lowestHz: lowest, stagesDone: s.stage - 1 });
        else if (s.phase === 'recovering') regions.set(region, { ...s, sinceMs: Number.POSITIVE_INFINITY, lowestHz: lowest });
        else regions.set(region, { ...s, lowestHz: lowest });
        return out;
      }
      if (s.phase === 'tripped') regions.set(region, { phase: 'recovering', sinceMs: nowMs, lowestHz: lowest, stagesDone: 0 });
      else if (s.phase === 'recovering' && s.sinceMs === Number.POSITIVE_INFINITY) regions.set(region, { ...s, sinceMs: nowMs, lowestHz: lowest });
      advance(region, nowMs, out);
      return out;
    },
    /** time passes: holds end and stages fall due */
    tick(nowMs: number): GuardAction[] {
      const out: GuardAction[] = [];
      for (const region of regions.keys()) advance(region, nowMs, out);
      return out;
    },
    /**
     * After a control-plane restart with the region still held (its grid claims are stored): it
     * starts tripped again, so recovery goes through the hold and the stages as it would have.
     */
    resume(region: string, nowMs: number): void {
      if (get(region).phase === 'normal') regions.set(region, { phase: 'tripped', sinceMs: nowMs, lowestHz: Number.POSITIVE_INFINITY });
    },
    state: (region: string): RegionPhase => get(region),
    lastReading: (region: string) => last.get(region) ?? null,
    regions: () => [...new Set([...regions.keys(), ...last.keys()])],
    /** true while the region's ASICs belong to the grid response, not to the economic engine */
    holding: (region: string): boolean => get(region).phase !== 'normal',
  };
}

export type FrequencyGuard = ReturnType<typeof createFrequencyGuard>;
