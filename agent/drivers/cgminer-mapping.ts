// Maps a bmminer `stats` + `summary` reply to an AsicSample. Field names per
// shared/reference/device-protocols.md; values arrive as numbers or numeric strings.
import { MiningState, type AsicSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { estimateAsicPowerW, type AsicModel } from '../../proto/asic-models.js';

type Obj = Record<string, unknown>;

/** "2--1-20-22" → [2, -1, 20, 22]: readings joined by "-", so a negative reading gives "--". */
export function parseDashedTemps(s: unknown): number[] {
  if (typeof s === 'number') return [s];
  if (typeof s !== 'string') return [];
  const out: number[] = [];
  for (const m of s.matchAll(/(?:^|-)(-?\d+(?:\.\d+)?)/g)) out.push(Number(m[1]));
  return out;
}

const num = (v: unknown): number | undefined => {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : undefined;
};

const count = (v: unknown): number => Math.max(0, Math.round(num(v) ?? 0));

/** `stats` puts the header in STATS[0] and the data in STATS[1]; find the entry with data. */
export function statsData(stats: Obj | undefined): Obj {
  const arr = Array.isArray(stats?.STATS) ? (stats.STATS as Obj[]) : [];
  return arr.find((e) => e && typeof e === 'object' && ('GHS 5s' in e || 'fan_num' in e || 'temp_num' in e)) ?? arr[1] ?? {};
}

export function summaryData(summary: Obj | undefined): Obj {
  const arr = Array.isArray(summary?.SUMMARY) ? (summary.SUMMARY as Obj[]) : [];
  return arr[0] ?? {};
}

function indexed(data: Obj, prefix: string, n: number): unknown[] {
  return Array.from({ length: n }, (_, i) => data[`${prefix}${i + 1}`]);
}

export function mapCgminerToAsicSample(
  deviceId: string,
  nowMs: number,
  model: AsicModel,
  stats: Obj | undefined,
  summary: Obj | undefined,
): AsicSample {
  const st = statsData(stats);
  const sm = summaryData(summary);
  const ghs5s = num(sm['GHS 5s']) ?? num(st['GHS 5s']) ?? 0;
  const ghsAv = num(sm['GHS av']) ?? num(st['GHS av']) ?? 0;
  const ths5s = ghs5s / 1000;

  const chains = count(st.temp_num) || count(st.miner_count) || 3;
  const maxOf = (xs: number[]): number => (xs.length ? Math.max(...xs) : 0);
  // Hottest of the four sensors per hashboard (temp_pcbN / temp_chipN).
  const boardTemps = indexed(st, 'temp_pcb', chains).map((v) => maxOf(parseDashedTemps(v)));
  const chipTemps = indexed(st, 'temp_chip', chains).map((v) => maxOf(parseDashedTemps(v)));
  const fans = indexed(st, 'fan', count(st.fan_num) || 4).map(count);

  // Antminer miner-mode 1 is sleep. Below 90 % of the ideal rate the miner is still ramping
  // (boards initialising or tuning); a dead board looks the same from this API.
  const mode = num(st.Mode);
  const ideal = num(st.total_rateideal) ?? 0;
  const miningState =
    mode === 1
      ? MiningState.MINING_STATE_SLEEPING
      : ideal > 0 && ghs5s < 0.9 * ideal
        ? MiningState.MINING_STATE_RAMPING
        : ghs5s > 0
          ? MiningState.MINING_STATE_MINING
          : MiningState.MINING_STATE_RAMPING;

  // Power: taken from `stats` when the firmware reports it (custom firmware's total_power);
  // stock bmminer does not, so it is estimated from hashrate along the model's J/TH curve.
  const reported = num(st.total_power) ?? num(st.power);
  const powerW = reported ?? Math.round(estimateAsicPowerW(model, mode === 1 ? 0 : ths5s) * 10) / 10;

  return {
    deviceId,
    tsMs: nowMs,
    hashrate5sThs: ths5s,
    hashrateAvgThs: ghsAv / 1000,
    powerW,
    boardTemperaturesC: boardTemps,
    chipTemperaturesC: chipTemps,
    fanRpm: fans,
    acceptedShares: count(sm.Accepted),
    rejectedShares: count(sm.Rejected),
    hardwareErrors: count(sm['Hardware Errors']),
    miningState,
    // Stock firmware sets power only by its mode (cgminer-driver.ts): low-power mode (3) is the
    // model's low-power target, stock (0) is none. Reported, so a reconciler asking for the
    // low-power target can see it reached (it was always 0, and such a claim never converged).
    powerTargetW: mode === 3 ? model.lowPowerW : 0,
  };
}
