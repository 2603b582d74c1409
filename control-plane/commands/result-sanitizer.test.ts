import { describe, expect, it } from 'vitest';
import { CommandOutcome, type CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import { cleanText, RESULT_LIMITS, sanitizeResult } from './result-sanitizer.js';

const result = (over: Partial<CommandResult> = {}): CommandResult => ({
  commandId: 'c1', outcome: CommandOutcome.COMMAND_OUTCOME_FAILED, reasonCode: 'driver_error', message: 'fan 2 stalled',
  devices: [{ deviceId: 'asic-t-00001', state: 'sleeping', workloadId: '', powerTargetW: 0 }], appliedAtMs: 1,
  ...over,
});

describe('sanitizeResult', () => {
  it('leaves an ordinary result as it is', () => {
    expect(sanitizeResult(result())).toEqual(result());
  });

  it('strips NUL from the message and every device string', () => {
    const r = sanitizeResult(result({
      message: 'a\u0000b\u0000',
      devices: [{ deviceId: 'asic\u0000-1', state: 'mi\u0000ning', workloadId: 'w\u0000', powerTargetW: 1 }],
    }));
    expect(r.message).toBe('ab');
    expect(r.devices).toEqual([{ deviceId: 'asic-1', state: 'mining', workloadId: 'w', powerTargetW: 1 }]);
    expect(JSON.stringify(r)).not.toContain('\\u0000');
  });

  it('caps the message, and never halves a surrogate pair', () => {
    expect(sanitizeResult(result({ message: 'x'.repeat(5000) })).message).toHaveLength(RESULT_LIMITS.message);
    const cut = cleanText('x'.repeat(RESULT_LIMITS.message - 1) + '😀', RESULT_LIMITS.message);
    expect(cut).toBe('x'.repeat(RESULT_LIMITS.message - 1));
  });

  it('replaces lone surrogates, whose JSON escape jsonb refuses', () => {
    expect(cleanText('a\uD800b\uDC00c', 100)).toBe('a\uFFFDb\uFFFDc');
    expect(cleanText('😀', 100)).toBe('😀');
  });

  it('keeps a reason code only when it is a short code', () => {
    expect(sanitizeResult(result({ reasonCode: 'device_busy' })).reasonCode).toBe('device_busy');
    expect(sanitizeResult(result({ reasonCode: '' })).reasonCode).toBe('');
    expect(sanitizeResult(result({ reasonCode: 'x'.repeat(65) })).reasonCode).toBe('invalid_reason_code');
    expect(sanitizeResult(result({ reasonCode: 'ok\u0000' })).reasonCode).toBe('invalid_reason_code');
    expect(sanitizeResult(result({ reasonCode: 'DROP TABLE commands; --' })).reasonCode).toBe('invalid_reason_code');
    expect(sanitizeResult(result({ reasonCode: '<script>' })).reasonCode).toBe('invalid_reason_code');
  });

  it('caps the device list and each device string, and zeroes a power target that is not a number of watts', () => {
    const many = Array.from({ length: RESULT_LIMITS.devices + 500 }, (_, i) => ({ deviceId: `d${i}`, state: 'sleeping', workloadId: '', powerTargetW: 0 }));
    expect(sanitizeResult(result({ devices: many })).devices).toHaveLength(RESULT_LIMITS.devices);
    const [d] = sanitizeResult(result({ devices: [{ deviceId: 'i'.repeat(1000), state: 's'.repeat(1000), workloadId: 'w'.repeat(1000), powerTargetW: Number.NaN }] })).devices;
    expect(d).toEqual({ deviceId: 'i'.repeat(RESULT_LIMITS.deviceId), state: 's'.repeat(RESULT_LIMITS.deviceState), workloadId: 'w'.repeat(RESULT_LIMITS.workloadId), powerTargetW: 0 });
    expect(sanitizeResult(result({ devices: [{ deviceId: 'a', state: '', workloadId: '', powerTargetW: -5 }] })).devices[0]!.powerTargetW).toBe(0);
  });

  it('does not change what it was given', () => {
    const r = result({ message: 'a\u0000' });
    sanitizeResult(r);
    expect(r.message).toBe('a\u0000');
  });
});
