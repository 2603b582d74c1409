import { describe, expect, it } from 'vitest';
import { ASIC_MODEL_SPECS, hashFractionAt } from './asic-models.js';
import {
  asicEconomics,
  bestOperatingPoint,
  DEFAULT_NETWORK_PARAMS,
  effectiveBreakevenUsdKwh,
  gpuEconomics,
  hashpriceUsdPerPhDay,
  netUsdPerThHour,
  siteProfitability,
} from './profitability.js';

const XP = ASIC_MODEL_SPECS['s21-xp'];

describe('profitability', () => {
  it('computes hashprice from BTC, subsidy, fees and network hashrate', () => {
    // 90,000 × 3.15 × 144 / 1,100,000 PH/s
    expect(hashpriceUsdPerPhDay(90_000)).toBeCloseTo(37.11, 2);
    expect(hashpriceUsdPerPhDay(90_000, { ...DEFAULT_NETWORK_PARAMS, networkHashrateEhs: 550 })).toBeCloseTo(74.23, 2);
  });

  it('puts the S21 XP break-even near $0.115/kWh at $38/PH/day (docs/architecture.md)', () => {
    // choose BTC so hashprice is exactly $38/PH/day
    const btc = (38 * DEFAULT_NETWORK_PARAMS.networkHashrateEhs * 1000) / (3.15 * 144);
    expect(hashpriceUsdPerPhDay(btc)).toBeCloseTo(38, 9);
    const e = asicEconomics(XP, btc, 0.05);
    expect(e.breakevenUsdKwh).toBeCloseTo((38 * 0.98) / (24 * 13.5), 3);
    expect(e.breakevenUsdKwh).toBeGreaterThan(0.113);
    expect(e.breakevenUsdKwh).toBeLessThan(0.117);
    // per hour: 270 TH/s × 38/1000/24 × 0.98 revenue, 3.645 kW × $0.05 cost
    expect(e.revenueUsdH).toBeCloseTo(270 * (38 / 1000 / 24) * 0.98, 6);
    expect(e.powerCostUsdH).toBeCloseTo(3.645 * 0.05, 6);
    expect(e.marginUsdH).toBeCloseTo(e.revenueUsdH - e.powerCostUsdH, 9);
    // less efficient models break even lower
    expect(asicEconomics(ASIC_MODEL_SPECS['s21'], btc, 0.05).breakevenUsdKwh).toBeCloseTo((38 * 0.98) / (24 * 17.5), 3);
  });

  it('lowers the power target as power gets dearer, and mines at a loss never', () => {
    const r = netUsdPerThHour(90_000);
    expect(bestOperatingPoint(XP, r, 0.03).fraction).toBe(1.1);
    const mid = bestOperatingPoint(XP, r, 0.11);
    expect(mid.fraction).toBeLessThan(1);
    expect(mid.marginUsdH).toBeGreaterThan(asicEconomics(XP, 90_000, 0.11).marginUsdH);
    const be = effectiveBreakevenUsdKwh(XP, r);
    expect(be).toBeGreaterThan(asicEconomics(XP, 90_000, 0.1).breakevenUsdKwh);
    expect(bestOperatingPoint(XP, r, be * 0.99).gainOverSleepUsdH).toBeGreaterThan(0);
    expect(bestOperatingPoint(XP, r, be * 1.01).gainOverSleepUsdH).toBeLessThan(0);
    expect(hashFractionAt(XP, XP.ratedPowerW)).toBeCloseTo(1, 12);
  });

  it('values an H100 at spot × utilization against 700 W', () => {
    const g = gpuEconomics(4, 0.05);
    expect(g.revenueUsdH).toBeCloseTo(3.6, 9);
    expect(g.powerCostUsdH).toBeCloseTo(0.035, 9);
    expect(g.breakevenUsdKwh).toBeCloseTo(3.6 / 0.7, 9);
  });

  it('produces one profitability_scores row per model and the GPU class', () => {
    const rows = siteProfitability('texas-1', '2025-06-01T00:00:00.000Z', { btcUsd: 90_000, powerUsdKwh: 0.06, gpuSpotUsdH: 3.5 });
    expect(rows.map((r) => r.device_class)).toEqual(['asic:s21', 'asic:s21-pro', 'asic:s21-xp', 'gpu:h100']);
    expect(rows[2]!.margin_usd_h).toBeCloseTo(asicEconomics(XP, 90_000, 0.06).marginUsdH, 12);
    expect(rows[2]!.details.hashprice_usd_ph_day).toBeCloseTo(37.11, 2);
  });
});
