import { describe, expect, it } from 'vitest';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { ASIC_MODELS, estimateAsicPowerW } from '../../proto/asic-models.js';
import { mapCgminerToAsicSample, parseDashedTemps } from './cgminer-mapping.js';

const XP = ASIC_MODELS['s21-xp']!;
const stats = (data: Record<string, unknown>) => ({ STATS: [{ Type: 'Antminer S21 XP' }, data] });
const summary = (data: Record<string, unknown>) => ({ SUMMARY: [data] });

describe('cgminer mapping', () => {
  it('splits "a-b-c-d" temperature strings, including negative readings', () => {
    expect(parseDashedTemps('2--1-20-22')).toEqual([2, -1, 20, 22]);
    expect(parseDashedTemps('55-57-60-62')).toEqual([55, 57, 60, 62]);
    expect(parseDashedTemps('-3--4-0-1')).toEqual([-3, -4, 0, 1]);
    expect(parseDashedTemps(undefined)).toEqual([]);
  });

  it('maps hashrate, hottest sensor per chain, fans, shares and state', () => {
    const s = mapCgminerToAsicSample(
      'asic-x-00001',
      123,
      XP,
      stats({
        'GHS 5s': 1, Mode: 0, fan_num: 4, fan1: 4000, fan2: 4100, fan3: '4200', fan4: 4300, temp_num: 3,
        temp_pcb1: '50-52-55-57', temp_chip1: '63-65-68-70', temp_pcb2: '2--1-20-22', temp_chip2: '60-61-62-63',
        temp_pcb3: '51-52-53-54', temp_chip3: '64-66-69-71', total_rateideal: 270000,
      }),
      summary({ 'GHS 5s': 268000, 'GHS av': 269500, Accepted: 11187, Rejected: 9, 'Hardware Errors': 61 }),
    );
    expect(s).toMatchObject({
      deviceId: 'asic-x-00001',
      tsMs: 123,
      hashrate5sThs: 268,
      hashrateAvgThs: 269.5,
      boardTemperaturesC: [57, 22, 54],
      chipTemperaturesC: [70, 63, 71],
      fanRpm: [4000, 4100, 4200, 4300],
      acceptedShares: 11187,
      rejectedShares: 9,
      hardwareErrors: 61,
      miningState: MiningState.MINING_STATE_MINING,
    });
    // No power in stock stats: estimated along the model curve, ≈ rated at rated hashrate.
    expect(s.powerW).toBeCloseTo(estimateAsicPowerW(XP, 268), 0);
    expect(estimateAsicPowerW(XP, 270)).toBeCloseTo(3645, 6);
  });

  it('uses reported power when present; Mode 1 is sleeping; below 90 % of ideal is ramping', () => {
    expect(mapCgminerToAsicSample('a', 0, XP, stats({ total_power: 3100, total_rateideal: 270000 }), summary({ 'GHS 5s': 260000 })).powerW).toBe(3100);
    const asleep = mapCgminerToAsicSample('a', 0, XP, stats({ Mode: 1, total_rateideal: 270000 }), summary({ 'GHS 5s': 0 }));
    expect(asleep.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect(asleep.powerW).toBe(35);
    const ramp = mapCgminerToAsicSample('a', 0, XP, stats({ Mode: 0, total_rateideal: 270000 }), summary({ 'GHS 5s': 100000 }));
    expect(ramp.miningState).toBe(MiningState.MINING_STATE_RAMPING);
  });
});
