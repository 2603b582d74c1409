import { describe, expect, it } from 'vitest';
import { ASIC_MODEL_SPECS, type AsicModelId } from './asic-models.js';
import { DEFAULT_ENGINE_CONFIG, decideSite, scheduleOffAt, type AsicInput, type SiteInputs } from './engine.js';
import { effectiveBreakevenUsdKwh, netUsdPerThHour } from './profitability.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');
const BTC = 90_000;
const beOf = (m: AsicModelId) => effectiveBreakevenUsdKwh(ASIC_MODEL_SPECS[m], netUsdPerThHour(BTC));

const asic = (id: string, model: AsicModelId, over: Partial<AsicInput> = {}): AsicInput => ({ id, model, state: 'mining', powerTargetW: null, lastChangeMs: null, ...over });
const fleet = (): AsicInput[] => [asic('asic-t-00001', 's21'), asic('asic-t-00002', 's21-pro'), asic('asic-t-00003', 's21-xp')];
const site = (over: Partial<SiteInputs> = {}): SiteInputs => ({
  siteId: 'texas-1',
  nowMs: NOW,
  prices: { btcUsd: BTC, powerUsdKwh: 0.05, gpuSpotUsdH: 3.5 },
  capKw: 250,
  gpuKw: 7,
  gpusBusy: 10,
  asics: fleet(),
  ...over,
});
const mining = (d: ReturnType<typeof decideSite>) => d.asics.filter((a) => a.mine).map((a) => a.id);

describe('decision engine', () => {
  it('leaves a site untouched while it has no power price', () => {
    const d = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: null, gpuSpotUsdH: 3.5 }, asics: [asic('a', 's21-xp'), asic('b', 's21', { state: 'sleeping' })] }));
    expect(d.rule).toBe('no_power_price');
    expect(d.commands).toEqual([]);
    expect(d.asics.map((a) => a.mine)).toEqual([true, false]);
    expect(d.explanation.expectedUsdH).toBeNull();
  });

  it('sleeps every ASIC at a $5/kWh spike and explains why; GPUs are not its to command', () => {
    const d = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: 5, gpuSpotUsdH: 3.5 } }));
    expect(d.rule).toBe('price_curtail');
    expect(mining(d)).toEqual([]);
    expect(d.commands).toEqual([{ enabled: false, deviceIds: ['asic-t-00001', 'asic-t-00002', 'asic-t-00003'], powerTargetW: 0 }]);
    expect(d.explanation.inputs.powerUsdKwh).toBe(5);
    expect(d.explanation.models.find((m) => m.model === 's21-xp')!.effectiveBreakevenUsdKwh).toBeCloseTo(beOf('s21-xp'), 9);
    // what is left is GPU margin minus standby power
    expect(d.explanation.expectedUsdH!.asicRevenue).toBe(0);
    expect(d.explanation.expectedUsdH!.gpuRevenue).toBeCloseTo(10 * 3.5 * 0.9, 9);
    expect(d.explanation.summary).toMatch(/price_curtail: 0\/3 ASICs mining, 3 change/);
  });

  it('mines everything, overclocked, when power is cheap', () => {
    const d = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: 0.03, gpuSpotUsdH: 3.5 } }));
    expect(mining(d)).toHaveLength(3);
    expect(d.asics.every((a) => a.powerTargetW === ASIC_MODEL_SPECS[a.model].maxPowerW)).toBe(true);
    expect(d.rule).toBe('retarget');
    expect(d.explanation.expectedUsdH!.margin).toBeGreaterThan(0);
  });

  it('holds inside the hysteresis band and switches outside it', () => {
    const be = beOf('s21-xp');
    const h = DEFAULT_ENGINE_CONFIG.hysteresis;
    const on = [asic('x', 's21-xp')];
    const off = [asic('x', 's21-xp', { state: 'sleeping' })];
    const at = (p: number, asics: AsicInput[]) => decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: p, gpuSpotUsdH: 3.5 }, asics }));
    // held on, at the lowest target (best J/TH): a retarget, not a stop
    expect(at(be * (1 + h / 2), on).asics[0]).toMatchObject({ mine: true, rule: 'hysteresis', change: 'retarget', powerTargetW: 1823 });
    expect(at(be * (1 + 2 * h), on).asics[0]).toMatchObject({ mine: false, rule: 'price_curtail', change: 'stop' });
    expect(at(be * (1 - h / 2), off).asics[0]).toMatchObject({ mine: false, rule: 'hysteresis', change: 'none' });
    const resumed = at(be * (1 - 2 * h), off);
    expect(resumed.asics[0]).toMatchObject({ mine: true, rule: 'price_resume', change: 'start' });
    // near break-even the best target is the lowest, where J/TH is best
    expect(resumed.commands).toEqual([{ enabled: true, deviceIds: ['x'], powerTargetW: Math.round(3645 * 0.5) }]);
  });

  it('respects minimum on and off durations', () => {
    const justStarted = asic('x', 's21-xp', { state: 'starting', lastChangeMs: NOW - 60_000 });
    const d1 = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: 1, gpuSpotUsdH: 3.5 }, asics: [justStarted] }));
    expect(d1.asics[0]).toMatchObject({ mine: true, rule: 'min_on', powerTargetW: 1823 });
    expect(d1.rule).toBe('min_on');
    const justStopped = asic('x', 's21-xp', { state: 'sleeping', lastChangeMs: NOW - 60_000 });
    expect(decideSite(site({ asics: [justStopped] })).asics[0]).toMatchObject({ mine: false, rule: 'min_off' });
    const longAgo = asic('x', 's21-xp', { state: 'sleeping', lastChangeMs: NOW - DEFAULT_ENGINE_CONFIG.minOffS * 1000 });
    expect(decideSite(site({ asics: [longAgo] })).asics[0]).toMatchObject({ mine: true, rule: 'price_resume' });
  });

  it('sheds inside the minimum on time only for a spike of spikeMultiple × break-even', () => {
    const justStarted = asic('x', 's21-xp', { state: 'mining', lastChangeMs: NOW - 60_000 });
    const cfg = { ...DEFAULT_ENGINE_CONFIG, spikeMultiple: 3 };
    const at = (p: number) => decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: p, gpuSpotUsdH: 3.5 }, asics: [justStarted] }), cfg).asics[0];
    expect(at(beOf('s21-xp') * 3.1)).toMatchObject({ mine: false, rule: 'price_curtail', change: 'stop' });
    expect(at(beOf('s21-xp') * 2.5)).toMatchObject({ mine: true, rule: 'min_on' });
  });

  it('does not retarget for a small gain', () => {
    const best = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: 0.09, gpuSpotUsdH: 3.5 }, asics: [asic('x', 's21-xp')] })).asics[0]!.powerTargetW;
    expect(best).toBeLessThan(3645);
    const near = asic('x', 's21-xp', { powerTargetW: best + Math.round(3645 * 0.05) });
    const d = decideSite(site({ prices: { btcUsd: BTC, powerUsdKwh: 0.09, gpuSpotUsdH: 3.5 }, asics: [near] }));
    expect(d.asics[0]).toMatchObject({ mine: true, change: 'none', powerTargetW: near.powerTargetW });
    expect(d.commands).toEqual([]);
  });

  it('shares the cap with the GPUs and sheds the worst J/TH first', () => {
    // 3 × S21 (3.5 kW), 3 × Pro (3.51 kW), 3 × XP (3.645 kW) at stock ≈ 32 kW; GPUs take 20 of 40.
    const asics = (['s21', 's21-pro', 's21-xp'] as const).flatMap((m) => [1, 2, 3].map((i) => asic(`${m}-${i}`, m)));
    const d = decideSite(site({ capKw: 40, gpuKw: 20, asics, prices: { btcUsd: BTC, powerUsdKwh: 0.06, gpuSpotUsdH: 3.5 } }));
    expect(d.rule).toBe('site_cap');
    expect(d.explanation.asicBudgetKw).toBe(20);
    expect(d.explanation.asicPlannedKw).toBeLessThanOrEqual(20);
    const on = (m: string) => d.asics.filter((a) => a.model === m && a.mine).length;
    expect(on('s21-xp')).toBe(3);
    expect(on('s21-pro')).toBeGreaterThanOrEqual(1);
    expect(on('s21')).toBe(0);
    expect(d.asics.filter((a) => a.rule === 'site_cap').every((a) => a.model !== 's21-xp')).toBe(true);
    // with GPUs taking everything, no ASIC mines
    expect(mining(decideSite(site({ capKw: 40, gpuKw: 40, asics })))).toEqual([]);
  });

  it('honours a demand-response commitment during its window only', () => {
    const asics = (['s21', 's21-xp'] as const).flatMap((m) => [1, 2].map((i) => asic(`${m}-${i}`, m)));
    const dr = [{ mw: 0.005, fromMs: NOW - 1000, toMs: NOW + 3600_000 }];
    const d = decideSite(site({ capKw: 20, gpuKw: 5, asics, demandResponse: dr }));
    expect(d.rule).toBe('demand_response');
    expect(d.explanation.inputs.demandResponseKw).toBe(5);
    expect(d.explanation.asicPlannedKw).toBeLessThanOrEqual(10);
    // both XPs at full power; what is left runs one S21 at a reduced target, the other sleeps
    expect(d.asics.filter((a) => a.model === 's21-xp').map((a) => a.powerTargetW)).toEqual([ASIC_MODEL_SPECS['s21-xp'].maxPowerW, ASIC_MODEL_SPECS['s21-xp'].maxPowerW]);
    const s21 = d.asics.filter((a) => a.model === 's21');
    expect(s21.filter((a) => a.mine)).toHaveLength(1);
    expect(s21.find((a) => a.mine)!.powerTargetW).toBeLessThan(3500);
    expect(mining(decideSite(site({ capKw: 20, gpuKw: 5, asics, demandResponse: dr, nowMs: NOW + 3600_000 })))).toHaveLength(4);
  });

  it('finds an ASIC sleeping in a schedule window from the site local time', () => {
    // 12:00 UTC is 06:00 in Texas (UTC−6); the window 05–07 covers it, 22–02 (wrapping) does not.
    expect(scheduleOffAt([{ fromHour: 5, toHour: 7, mining: 'off' }], NOW, -6)).toBe(true);
    expect(scheduleOffAt([{ fromHour: 22, toHour: 2, mining: 'off' }], NOW, -6)).toBe(false);
    expect(scheduleOffAt([{ fromHour: 22, toHour: 2, mining: 'off' }], NOW - 7 * 3600_000, -6)).toBe(true);
    expect(scheduleOffAt([{ fromHour: 5, toHour: 7, mining: 'auto' }], NOW, -6)).toBe(false);
  });
});
