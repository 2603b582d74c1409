// Profitability per device class per hour: revenue, power cost, margin and break-even power price
// (issue 5). Pure functions; the control plane stores `siteProfitability` rows each interval in
// profitability_scores (columns match) and serves them from GET /api/v1/economics.
//
// hashprice (USD per PH/s per day) = BTC × (block subsidy + avg fees per block) × 144 / network PH/s
// break-even ($/kWh) = hashprice × (1 − pool fee) / (24 × J/TH)   (docs/architecture.md "Reference numbers")
import { ASIC_MODEL_SPECS, DEFAULT_POWER_FRACTIONS, hashFractionAt, targetWattsFor, type AsicModelId, type AsicModelSpec } from './asic-models.js';

export interface NetworkParams {
  /** network hashrate, EH/s */
  networkHashrateEhs: number;
  /** BTC per block; 3.125 since the April 2024 halving (block 840,000) until ~2028 (block 1,050,000) */
  blockSubsidyBtc: number;
  /** average transaction fees per block, BTC */
  avgFeesBtcPerBlock: number;
  /** pool fee as a fraction (FPPS pools charge 2–4 %) */
  poolFee: number;
}

// Defaults: approximate public figures for late 2025 (mempool.space mining dashboard and the
// Hashrate Index hashprice series, read November 2025): network hashrate ≈ 1,100 EH/s (7-day
// average), fees ≈ 0.025 BTC per block (under 1 % of the reward in a quiet mempool). With BTC at
// $90,000 they give ≈ $37/PH/day, the hashprice docs/architecture.md's break-even figure assumes.
// They are configuration, not facts: a deployment sets them from its own data source.
export const DEFAULT_NETWORK_PARAMS: Readonly<NetworkParams> = {
  networkHashrateEhs: 1_100,
  blockSubsidyBtc: 3.125,
  avgFeesBtcPerBlock: 0.025,
  poolFee: 0.02,
};

/** blocks per day at the 10-minute target spacing */
const BLOCKS_PER_DAY = 144;

export function hashpriceUsdPerPhDay(btcUsd: number, n: NetworkParams = DEFAULT_NETWORK_PARAMS): number {
  return (btcUsd * (n.blockSubsidyBtc + n.avgFeesBtcPerBlock) * BLOCKS_PER_DAY) / (n.networkHashrateEhs * 1000);
}

/** revenue per TH/s per hour after the pool fee */
export function netUsdPerThHour(btcUsd: number, n: NetworkParams = DEFAULT_NETWORK_PARAMS): number {
  return (hashpriceUsdPerPhDay(btcUsd, n) * (1 - n.poolFee)) / 1000 / 24;
}

export interface ClassEconomics {
  /** 'asic:s21-xp', 'gpu:h100' (profitability_scores.device_class) */
  deviceClass: string;
  revenueUsdH: number;
  powerCostUsdH: number;
  marginUsdH: number;
  /** the power price at which the margin is zero */
  breakevenUsdKwh: number;
  powerW: number;
}

/** One ASIC at a power target (default stock), mining at its steady-state hashrate. */
export function asicEconomics(m: AsicModelSpec, btcUsd: number, powerUsdKwh: number, n: NetworkParams = DEFAULT_NETWORK_PARAMS, powerW = m.ratedPowerW): ClassEconomics & { hashrateThs: number } {
  const hashrateThs = m.ratedThs * hashFractionAt(m, powerW);
  const revenueUsdH = hashrateThs * netUsdPerThHour(btcUsd, n);
  const powerCostUsdH = (powerW / 1000) * powerUsdKwh;
  return { deviceClass: `asic:${m.id}`, revenueUsdH, powerCostUsdH, marginUsdH: revenueUsdH - powerCostUsdH, breakevenUsdKwh: revenueUsdH / (powerW / 1000), powerW, hashrateThs };
}

export interface OperatingPoint {
  fraction: number;
  powerW: number;
  /** steady-state margin while mining at this target, USD/h */
  marginUsdH: number;
  /** margin gained over sleeping (which still pays for standby power), USD/h */
  gainOverSleepUsdH: number;
}

/**
 * The best power target at these prices. Below break-even a lower target can still pay: J/TH
 * improves as the clock drops, so the break-even power price rises (S21 XP: ≈ $0.11 at stock,
 * ≈ $0.14 at 50 %).
 */
export function bestOperatingPoint(m: AsicModelSpec, usdPerThHour: number, powerUsdKwh: number, fractions: readonly number[] = DEFAULT_POWER_FRACTIONS): OperatingPoint {
  let best: OperatingPoint | null = null;
  for (const fraction of fractions) {
    const op = operatingPoint(m, usdPerThHour, powerUsdKwh, fraction);
    if (best === null || op.marginUsdH > best.marginUsdH) best = op;
  }
  if (best === null) throw new RangeError('no power fractions to choose from');
  return best;
}

export function operatingPoint(m: AsicModelSpec, usdPerThHour: number, powerUsdKwh: number, fraction: number): OperatingPoint {
  const powerW = targetWattsFor(m, fraction);
  const marginUsdH = m.ratedThs * hashFractionAt(m, powerW) * usdPerThHour - (powerW / 1000) * powerUsdKwh;
  return { fraction, powerW, marginUsdH, gainOverSleepUsdH: marginUsdH + (m.standbyW / 1000) * powerUsdKwh };
}

/**
 * The power price above which sleeping beats mining at every allowed target:
 * max over targets of revenue / (power − standby).
 */
export function effectiveBreakevenUsdKwh(m: AsicModelSpec, usdPerThHour: number, fractions: readonly number[] = DEFAULT_POWER_FRACTIONS): number {
  let best = 0;
  for (const f of fractions) {
    const w = targetWattsFor(m, f);
    best = Math.max(best, (m.ratedThs * hashFractionAt(m, w) * usdPerThHour) / ((w - m.standbyW) / 1000));
  }
  return best;
}

export interface GpuAssumptions {
  /** share of an allocated GPU's hours that are billed at the spot rate */
  utilization: number;
  /** board power busy / idle: H100 SXM5 limit 700 W, ~105 W idle (docs/architecture.md) */
  busyW: number;
  idleW: number;
}

export const DEFAULT_GPU_ASSUMPTIONS: Readonly<GpuAssumptions> = { utilization: 0.9, busyW: 700, idleW: 105 };

/** One allocated H100, serving at the spot rate. */
export function gpuEconomics(spotUsdH: number, powerUsdKwh: number, g: GpuAssumptions = DEFAULT_GPU_ASSUMPTIONS): ClassEconomics {
  const revenueUsdH = spotUsdH * g.utilization;
  const powerCostUsdH = (g.busyW / 1000) * powerUsdKwh;
  return { deviceClass: 'gpu:h100', revenueUsdH, powerCostUsdH, marginUsdH: revenueUsdH - powerCostUsdH, breakevenUsdKwh: revenueUsdH / (g.busyW / 1000), powerW: g.busyW };
}

export interface ProfitabilityRow {
  time: string;
  site_id: string;
  device_class: string;
  revenue_usd_h: number;
  power_cost_usd_h: number;
  margin_usd_h: number;
  breakeven_usd_kwh: number;
  details: Record<string, number | string>;
}

export interface SitePrices {
  btcUsd: number;
  powerUsdKwh: number;
  gpuSpotUsdH: number;
}

/** Rows for profitability_scores: each ASIC model (stock power) and the GPU class, per device. */
export function siteProfitability(
  siteId: string,
  ts: string,
  p: SitePrices,
  models: readonly AsicModelId[] = Object.keys(ASIC_MODEL_SPECS) as AsicModelId[],
  n: NetworkParams = DEFAULT_NETWORK_PARAMS,
  g: GpuAssumptions = DEFAULT_GPU_ASSUMPTIONS,
): ProfitabilityRow[] {
  const hashprice = hashpriceUsdPerPhDay(p.btcUsd, n);
  const row = (e: ClassEconomics, details: Record<string, number | string>): ProfitabilityRow => ({
    time: ts,
    site_id: siteId,
    device_class: e.deviceClass,
    revenue_usd_h: e.revenueUsdH,
    power_cost_usd_h: e.powerCostUsdH,
    margin_usd_h: e.marginUsdH,
    breakeven_usd_kwh: e.breakevenUsdKwh,
    details,
  });
  const rows = [...new Set(models)].map((id) => {
    const m = ASIC_MODEL_SPECS[id];
    const e = asicEconomics(m, p.btcUsd, p.powerUsdKwh, n);
    return row(e, {
      btc_usd: p.btcUsd,
      power_usd_kwh: p.powerUsdKwh,
      hashprice_usd_ph_day: hashprice,
      hashrate_ths: e.hashrateThs,
      power_w: e.powerW,
      j_per_th: m.jPerTh,
      pool_fee: n.poolFee,
      effective_breakeven_usd_kwh: effectiveBreakevenUsdKwh(m, netUsdPerThHour(p.btcUsd, n)),
    });
  });
  rows.push(row(gpuEconomics(p.gpuSpotUsdH, p.powerUsdKwh, g), { gpu_spot_usd_h: p.gpuSpotUsdH, power_usd_kwh: p.powerUsdKwh, utilization: g.utilization, power_w: g.busyW }));
  return rows;
}
