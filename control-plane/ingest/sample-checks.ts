// Plausibility checks for one device sample. A sample that fails is dropped and counted by
// reason; the rest of its batch is kept.
import type { AsicSample, GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';

export interface SampleWindow {
  nowMs: number;
  /** oldest sample accepted: an agent's spool may replay a few hours after an outage */
  maxAgeMs: number;
  /** newest sample accepted: clock skew between agent and control plane */
  maxSkewMs: number;
}

const finiteNonNeg = (...xs: number[]) => xs.every((x) => Number.isFinite(x) && x >= 0);
// Silicon under power sits between ambient and ~125 °C; outside -40..150 it is a broken sensor.
const plausibleTemp = (t: number) => Number.isFinite(t) && t >= -40 && t <= 150;

export function checkTime(tsMs: number, w: SampleWindow): string | null {
  if (!Number.isFinite(tsMs) || tsMs < w.nowMs - w.maxAgeMs || tsMs > w.nowMs + w.maxSkewMs) return 'bad_timestamp';
  return null;
}

export function checkGpuSample(s: GpuSample, w: SampleWindow): string | null {
  const t = checkTime(s.tsMs, w);
  if (t) return t;
  if (!finiteNonNeg(s.utilizationPct, s.memoryUsedMib, s.memoryTotalMib, s.powerW, s.smClockMhz, s.powerLimitW)) return 'invalid_value';
  if (s.utilizationPct > 100 || s.memoryUsedMib > s.memoryTotalMib) return 'invalid_value';
  if (!plausibleTemp(s.temperatureC)) return 'invalid_value';
  return null;
}

export function checkAsicSample(s: AsicSample, w: SampleWindow): string | null {
  const t = checkTime(s.tsMs, w);
  if (t) return t;
  if (!finiteNonNeg(s.hashrate5sThs, s.hashrateAvgThs, s.powerW, s.powerTargetW)) return 'invalid_value';
  if (![...s.boardTemperaturesC, ...s.chipTemperaturesC].every(plausibleTemp)) return 'invalid_value';
  if (s.boardTemperaturesC.length > 16 || s.chipTemperaturesC.length > 16 || s.fanRpm.length > 16) return 'invalid_value';
  return null;
}
