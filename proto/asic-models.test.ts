import { describe, expect, it } from 'vitest';
import { ASIC_MODELS, asicModelByName, clampPowerTarget, estimateAsicPowerW, hashFractionForPower, powerForHashFraction, powerTargetInRange } from './asic-models.js';

describe('ASIC model catalog', () => {
  it('states the rated numbers and the power-target window of every model', () => {
    expect(ASIC_MODELS['s21-xp']).toEqual({
      id: 's21-xp', name: 'Antminer S21 XP', ratedThs: 270, jPerTh: 13.5, ratedPowerW: 3645, standbyW: 35, lowPowerW: 2734, minPowerW: 1823, maxPowerW: 4009,
    });
    expect(ASIC_MODELS.s21).toMatchObject({ ratedPowerW: 3500, minPowerW: 1750, maxPowerW: 3850 });
    expect(ASIC_MODELS['s21-pro']).toMatchObject({ ratedPowerW: 3510, lowPowerW: 2633 });
  });

  it('finds a model by its reported name or its id, and nothing for an unknown one', () => {
    expect(asicModelByName('Antminer S21 XP')?.id).toBe('s21-xp');
    expect(asicModelByName('  antminer s21 pro ')?.id).toBe('s21-pro');
    expect(asicModelByName('s21')?.name).toBe('Antminer S21');
    expect(asicModelByName('Antminer S19')).toBeUndefined();
    expect(asicModelByName('toString')).toBeUndefined();
  });

  it('checks and clamps power targets to the firmware window', () => {
    const m = ASIC_MODELS.s21;
    expect(powerTargetInRange(m, 1750)).toBe(true);
    expect(powerTargetInRange(m, 3850)).toBe(true);
    expect(powerTargetInRange(m, 1749)).toBe(false);
    expect(powerTargetInRange(m, 3851)).toBe(false);
    expect(powerTargetInRange(m, Number.NaN)).toBe(false);
    expect(clampPowerTarget(m, 10_000)).toBe(3850);
    expect(clampPowerTarget(m, 100)).toBe(1750);
  });

  it('follows the DVFS curve: 70 % power keeps about 80 % of the hashrate, and the curve inverts', () => {
    const m = ASIC_MODELS['s21-xp'];
    expect(hashFractionForPower(m, m.ratedPowerW * 0.7)).toBeCloseTo(0.8, 1);
    expect(powerForHashFraction(m, hashFractionForPower(m, 2500))).toBeCloseTo(2500, 6);
    expect(estimateAsicPowerW(m, m.ratedThs)).toBeCloseTo(m.ratedPowerW, 6);
    expect(estimateAsicPowerW(m, 0)).toBe(m.standbyW);
  });
});
