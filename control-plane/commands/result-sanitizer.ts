// A CommandResult comes from an agent, so it is stored only in a shape the database takes and an
// operator can read: no NUL (invalid in PostgreSQL text, 22021, and as \u0000 in jsonb, 22P05),
// no lone UTF-16 surrogate (its JSON escape is invalid in jsonb, 22P02), bounded lengths, a
// reason code that is a code and not prose. Pure, so it is cheap on the result path.
import type { CommandResult, DeviceState } from '../../proto/gen/hcp/v1/commands.js';

export const RESULT_LIMITS = {
  message: 1000,
  reasonCode: 64,
  /** a site holds hundreds to thousands of ASICs; a curtail lists every one */
  devices: 10_000,
  deviceId: 128,
  deviceState: 32,
  workloadId: 128,
} as const;

const REASON_CODE = /^[a-z0-9][a-z0-9_.-]*$/i;
const NUL = /\u0000/g;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** NUL removed, lone surrogates replaced, cut to max UTF-16 units without halving a pair */
export function cleanText(s: string, max: number): string {
  let t = s.replace(NUL, '').replace(LONE_SURROGATE, '\uFFFD');
  if (t.length > max) {
    t = t.slice(0, max);
    const last = t.charCodeAt(t.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) t = t.slice(0, -1);
  }
  return t;
}

function cleanDevice(d: DeviceState): DeviceState {
  return {
    deviceId: cleanText(d.deviceId, RESULT_LIMITS.deviceId),
    state: cleanText(d.state, RESULT_LIMITS.deviceState),
    workloadId: cleanText(d.workloadId, RESULT_LIMITS.workloadId),
    powerTargetW: Number.isFinite(d.powerTargetW) && d.powerTargetW >= 0 ? d.powerTargetW : 0,
  };
}

/** the result as it may be stored; an unusable reason code becomes 'invalid_reason_code' */
export function sanitizeResult(res: CommandResult): CommandResult {
  const code = res.reasonCode;
  return {
    ...res,
    reasonCode: code === '' ? '' : code.length <= RESULT_LIMITS.reasonCode && REASON_CODE.test(code) ? code : 'invalid_reason_code',
    message: cleanText(res.message, RESULT_LIMITS.message),
    devices: res.devices.slice(0, RESULT_LIMITS.devices).map(cleanDevice),
  };
}
