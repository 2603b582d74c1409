import { describe, expect, it } from 'vitest';
import { formatNvidiaSmiLine, NvidiaSmiParseError, parseNvidiaSmiLine, parseNvidiaSmiOutput } from './nvidia-smi-csv.js';

const BUSY = '0, GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee, NVIDIA H100 80GB HBM3, 100, 19818, 81559, 59, 631.95, 1980';

describe('nvidia-smi CSV', () => {
  it('parses the reference busy line and formats it back byte for byte', () => {
    const row = parseNvidiaSmiLine(BUSY);
    expect(row).toEqual({
      index: 0,
      uuid: 'GPU-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
      name: 'NVIDIA H100 80GB HBM3',
      utilizationPct: 100,
      memoryUsedMib: 19818,
      memoryTotalMib: 81559,
      temperatureC: 59,
      powerW: 631.95,
      smClockMhz: 1980,
    });
    expect(formatNvidiaSmiLine(row)).toBe(BUSY);
  });

  it('prints and parses [N/A] for missing values', () => {
    const line = formatNvidiaSmiLine({
      index: 1, uuid: 'GPU-x', name: 'NVIDIA H100 80GB HBM3', utilizationPct: null, memoryUsedMib: 0,
      memoryTotalMib: 81559, temperatureC: 41, powerW: null, smClockMhz: 345,
    });
    expect(line).toBe('1, GPU-x, NVIDIA H100 80GB HBM3, [N/A], 0, 81559, 41, [N/A], 345');
    expect(parseNvidiaSmiLine(line).powerW).toBeNull();
    expect(parseNvidiaSmiLine(line).utilizationPct).toBeNull();
  });

  it('accepts the form with units (no `nounits`) and multi-line output', () => {
    const out = '0, GPU-x, NVIDIA H100 80GB HBM3, 0 %, 0 MiB, 81559 MiB, 41, 69.85 W, 345 MHz\n\n' + BUSY + '\n';
    const rows = parseNvidiaSmiOutput(out);
    expect(rows).toHaveLength(2);
    expect(rows[0]!.powerW).toBe(69.85);
    expect(rows[0]!.smClockMhz).toBe(345);
  });

  it('rejects malformed lines with a typed error', () => {
    expect(() => parseNvidiaSmiLine('0, GPU-x, H100')).toThrow(NvidiaSmiParseError);
    expect(() => parseNvidiaSmiLine(BUSY.replace('631.95', 'lots'))).toThrow(/power.draw/);
  });
});
