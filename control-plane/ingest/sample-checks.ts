// Checks for one device sample. A sample that fails is dropped and counted by reason; the rest of
// its batch is kept. Two kinds of check:
// - plausibility (invalid_value, bad_timestamp): a reading no working device gives;
// - storability (out_of_range, invalid_text): every field fits the column it is written to
//   (migrations/0001_schema.sql, bound as in db/telemetry-writer.ts), so the database never has
//   to refuse a sample. The writer dead-letters what gets past these, but a check here is cheaper
//   and says which field.
import type { AsicSample, GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';

export interface SampleWindow {
  nowMs: number;
  /** oldest sample accepted: an agent's spool may replay a few hours after an outage */
  maxAgeMs: number;
  /** newest sample accepted: clock skew between agent and control plane */
  maxSkewMs: number;
}

export interface SampleProblem {
  reason: 'bad_timestamp' | 'invalid_value' | 'out_of_range' | 'invalid_text';
  /** the proto field */
  field: string;
}

/** device and workload ids; the agent's are ~20 characters */
export const MAX_ID_LENGTH = 128;
const INT4_MAX = 2 ** 31 - 1;

const finiteNonNeg = (x: number) => Number.isFinite(x) && x >= 0;
// Silicon under power sits between ambient and ~125 °C; outside -40..150 it is a broken sensor.
const plausibleTemp = (t: number) => Number.isFinite(t) && t >= -40 && t <= 150;
// `real` is float4; a float8 outside it fails the cast with 22003, overflow (|x| > 3.4e38) or
// underflow (a non-zero that rounds to 0, |x| < 1.4e-45). Math.fround is that same rounding.
const fitsReal = (x: number) => Number.isFinite(x) && Number.isFinite(Math.fround(x)) && (x === 0 || Math.fround(x) !== 0);
// the counters (uint32 on the wire) go into int4 columns, which stop at 2^31 - 1
const fitsInt4Count = (x: number) => Number.isInteger(x) && x >= 0 && x <= INT4_MAX;
// uint64 counters arrive as JS numbers; beyond 2^53 they are no longer the counter's value
const fitsInt8Count = (x: number) => Number.isSafeInteger(x) && x >= 0;
// text: PostgreSQL refuses NUL in text (22021)
const fitsText = (s: string) => s.length <= MAX_ID_LENGTH && !s.includes('\u0000');

const problem = (reason: SampleProblem['reason'], field: string): SampleProblem => ({ reason, field });

// Plain tests in a fixed order, no allocation unless a sample fails: this runs for every sample.

export function checkTime(tsMs: number, w: SampleWindow): SampleProblem | null {
  if (!Number.isFinite(tsMs) || tsMs < w.nowMs - w.maxAgeMs || tsMs > w.nowMs + w.maxSkewMs) return problem('bad_timestamp', 'ts_ms');
  return null;
}

export function checkGpuSample(s: GpuSample, w: SampleWindow): SampleProblem | null {
  const t = checkTime(s.tsMs, w);
  if (t) return t;
  if (!finiteNonNeg(s.utilizationPct) || s.utilizationPct > 100) return problem('invalid_value', 'utilization_pct');
  if (!finiteNonNeg(s.memoryTotalMib)) return problem('invalid_value', 'memory_total_mib');
  if (!finiteNonNeg(s.memoryUsedMib) || s.memoryUsedMib > s.memoryTotalMib) return problem('invalid_value', 'memory_used_mib');
  if (!finiteNonNeg(s.powerW)) return problem('invalid_value', 'power_w');
  if (!finiteNonNeg(s.smClockMhz)) return problem('invalid_value', 'sm_clock_mhz');
  if (!finiteNonNeg(s.powerLimitW)) return problem('invalid_value', 'power_limit_w');
  if (!plausibleTemp(s.temperatureC)) return problem('invalid_value', 'temperature_c');
  // a plausible reading can still underflow real (1e-50 %, 1e-50 °C)
  if (!fitsReal(s.utilizationPct)) return problem('out_of_range', 'utilization_pct');
  if (!fitsReal(s.temperatureC)) return problem('out_of_range', 'temperature_c');
  if (!fitsReal(s.memoryTotalMib)) return problem('out_of_range', 'memory_total_mib');
  if (!fitsReal(s.memoryUsedMib)) return problem('out_of_range', 'memory_used_mib');
  if (!fitsReal(s.powerW)) return problem('out_of_range', 'power_w');
  if (!fitsReal(s.smClockMhz)) return problem('out_of_range', 'sm_clock_mhz');
  if (!fitsReal(s.powerLimitW)) return problem('out_of_range', 'power_limit_w');
  if (!fitsReal(s.memoryTemperatureC)) return problem('out_of_range', 'memory_temperature_c');
  if (!fitsInt4Count(s.xidErrors)) return problem('out_of_range', 'xid_errors');
  if (!fitsInt8Count(s.energyMj)) return problem('out_of_range', 'energy_mj');
  if (!fitsText(s.deviceId)) return problem('invalid_text', 'device_id');
  if (!fitsText(s.workloadId)) return problem('invalid_text', 'workload_id');
  return null;
}

export function checkAsicSample(s: AsicSample, w: SampleWindow): SampleProblem | null {
  const t = checkTime(s.tsMs, w);
  if (t) return t;
  if (!finiteNonNeg(s.hashrate5sThs)) return problem('invalid_value', 'hashrate_5s_ths');
  if (!finiteNonNeg(s.hashrateAvgThs)) return problem('invalid_value', 'hashrate_avg_ths');
  if (!finiteNonNeg(s.powerW)) return problem('invalid_value', 'power_w');
  if (!finiteNonNeg(s.powerTargetW)) return problem('invalid_value', 'power_target_w');
  if (s.boardTemperaturesC.length > 16) return problem('invalid_value', 'board_temperatures_c');
  if (s.chipTemperaturesC.length > 16) return problem('invalid_value', 'chip_temperatures_c');
  if (s.fanRpm.length > 16) return problem('invalid_value', 'fan_rpm');
  for (const x of s.boardTemperaturesC) if (!plausibleTemp(x)) return problem('invalid_value', 'board_temperatures_c');
  for (const x of s.chipTemperaturesC) if (!plausibleTemp(x)) return problem('invalid_value', 'chip_temperatures_c');
  if (!fitsReal(s.hashrate5sThs)) return problem('out_of_range', 'hashrate_5s_ths');
  if (!fitsReal(s.hashrateAvgThs)) return problem('out_of_range', 'hashrate_avg_ths');
  if (!fitsReal(s.powerW)) return problem('out_of_range', 'power_w');
  if (!fitsReal(s.powerTargetW)) return problem('out_of_range', 'power_target_w');
  // a plausible temperature can still underflow real (1e-50 °C)
  for (const x of s.boardTemperaturesC) if (!fitsReal(x)) return problem('out_of_range', 'board_temperatures_c');
  for (const x of s.chipTemperaturesC) if (!fitsReal(x)) return problem('out_of_range', 'chip_temperatures_c');
  for (const x of s.fanRpm) if (!fitsInt4Count(x)) return problem('out_of_range', 'fan_rpm');
  if (!fitsInt8Count(s.acceptedShares)) return problem('out_of_range', 'accepted_shares');
  if (!fitsInt8Count(s.rejectedShares)) return problem('out_of_range', 'rejected_shares');
  if (!fitsInt8Count(s.hardwareErrors)) return problem('out_of_range', 'hardware_errors');
  if (!fitsText(s.deviceId)) return problem('invalid_text', 'device_id');
  return null;
}
