import { describe, expect, it } from 'vitest';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { createRng } from './rng.js';
import { createS21, type S21Options } from './s21.js';
import { S21_MODELS } from './s21-models.js';

const miner = (o: Partial<S21Options> = {}) =>
  createS21({ id: 'asic-t-00001', model: 's21-xp', rng: createRng(o.id ?? 1).fork('asic-t-00001'), ambientC: 25, ...o });
const run = (m: ReturnType<typeof miner>, seconds: number, dt = 1) => {
  for (let t = 0; t < seconds; t += dt) m.step(dt);
};
const XP = S21_MODELS['s21-xp'];

describe('S21 family models', () => {
  it('rated numbers match the reference table', () => {
    expect(XP).toMatchObject({ ratedThs: 270, jPerTh: 13.5, ratedPowerW: 3645, boards: 3, chipsPerBoard: 91, fans: 4 });
    expect(S21_MODELS['s21']).toMatchObject({ ratedThs: 200, jPerTh: 17.5, chipsPerBoard: 108 });
    expect(S21_MODELS['s21-pro']).toMatchObject({ ratedThs: 234, jPerTh: 15, chipsPerBoard: 65 });
  });
});

describe('S21 dynamics', () => {
  it('a miner switched on ramps to full hashrate over its start-up time', () => {
    const m = miner({ initialState: 'sleeping', startupSeconds: 240 });
    run(m, 60);
    expect(m.reading(0).hashrate5sThs).toBe(0);
    m.setMining(true);
    run(m, 30); // boot and board init: no hashing yet
    expect(m.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    expect(m.reading(0).hashrate5sThs).toBe(0);
    run(m, 120); // 150 s in: half-way through the hashing ramp
    const mid = m.reading(0).hashrate5sThs;
    expect(mid).toBeGreaterThan(0.3 * 270);
    expect(mid).toBeLessThan(0.7 * 270);
    expect(m.reading(0).powerW).toBeGreaterThan(1000);
    expect(m.reading(0).powerW).toBeLessThan(3000);
    run(m, 100);
    const full = m.reading(0);
    expect(m.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(full.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(full.hashrate5sThs).toBeGreaterThan(265);
    expect(full.hashrate5sThs).toBeLessThan(275);
    expect(full.powerW).toBeGreaterThan(3600);
    expect(full.powerW).toBeLessThan(3700);
  });

  it('sleep: ~0 hashrate and standby power within seconds; temperatures fall with thermal lag', () => {
    const m = miner();
    run(m, 600);
    const before = m.reading(0);
    expect(before.hashrate5sThs).toBeGreaterThan(260);
    m.setMining(false);
    run(m, 10, 0.5);
    const r = m.reading(0);
    expect(r.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    expect(r.hashrate5sThs).toBe(0);
    expect(r.powerW).toBeLessThan(50);
    expect(r.powerW).toBeGreaterThan(20);
    // The heatsinks are still warm after 10 s …
    expect(Math.max(...r.boardTemperaturesC)).toBeGreaterThan(Math.max(...before.boardTemperaturesC) - 8);
    run(m, 900);
    const cold = m.reading(0);
    // … and near inlet temperature after 15 minutes, with fans at their minimum.
    expect(Math.max(...cold.boardTemperaturesC)).toBeLessThan(32);
    expect(Math.max(...cold.fanRpm)).toBeLessThan(Math.min(...before.fanRpm));
    expect(m.cgminerStatus().mode).toBe(1);
  });

  it('a power target below stock lowers hashrate less than power (better J/TH), clamped to 50–110 %', () => {
    const stock = miner();
    run(stock, 120);
    const s = stock.reading(0);
    const jthStock = s.powerW / s.hashrate5sThs;

    const low = miner();
    low.setPowerTarget(0.7 * XP.ratedPowerW);
    run(low, 120);
    const l = low.reading(0);
    expect(l.powerTargetW).toBe(Math.round(0.7 * XP.ratedPowerW));
    expect(l.powerW).toBeGreaterThan(0.68 * XP.ratedPowerW);
    expect(l.powerW).toBeLessThan(0.72 * XP.ratedPowerW);
    expect(l.hashrate5sThs / s.hashrate5sThs).toBeGreaterThan(0.75);
    expect(l.hashrate5sThs / s.hashrate5sThs).toBeLessThan(0.85);
    expect(l.powerW / l.hashrate5sThs).toBeLessThan(0.92 * jthStock);
    expect(low.cgminerStatus().frequencyMhz).toBeLessThan(XP.stockFrequencyMhz);
    expect(low.cgminerStatus().mode).toBe(3);

    low.setPowerTarget(100);
    expect(low.powerTargetW).toBe(Math.ceil(0.5 * XP.ratedPowerW));
    low.setPowerTarget(1e6);
    expect(low.powerTargetW).toBe(Math.floor(1.1 * XP.ratedPowerW));
    low.setPowerTarget(null);
    run(low, 30);
    expect(low.reading(0).powerW).toBeGreaterThan(3600);
    expect(low.reading(0).powerTargetW).toBe(0);
  });

  it('shares accrue at hashrate / (difficulty × 2^32) within statistical bounds', () => {
    // Low difficulty gives many shares, so the bound is tight: λ = 270e12 / (2^16 × 2^32) ≈ 959/s.
    const difficulty = 65_536;
    const m = miner({ poolDifficulty: difficulty });
    const seconds = 600;
    run(m, seconds);
    const st = m.cgminerStatus();
    const expected = (st.ghsAv * 1e9 * seconds) / (difficulty * 2 ** 32);
    const total = st.accepted + st.rejected;
    // Poisson: sd = sqrt(λ); 5 sd is a bound a correct model essentially never crosses.
    expect(Math.abs(total - expected)).toBeLessThan(5 * Math.sqrt(expected));
    expect(st.rejected).toBeLessThan(total * 0.005);
    expect(st.bestShare).toBeGreaterThan(difficulty);
    // Best of n shares at difficulty D is around n·D.
    expect(st.bestShare).toBeGreaterThan(difficulty * total * 0.01);
  });

  it('same seed → identical readings; different seed → different', () => {
    const a = miner({ id: 'asic-t-00001' });
    const b = miner({ id: 'asic-t-00001' });
    const c = createS21({ id: 'asic-t-00001', model: 's21-xp', rng: createRng(2).fork('asic-t-00001') });
    for (const m of [a, b, c]) run(m, 300);
    expect(a.reading(1)).toEqual(b.reading(1));
    expect(a.cgminerStatus()).toEqual(b.cgminerStatus());
    expect(a.reading(1)).not.toEqual(c.reading(1));
    expect(a.minerId).not.toBe(c.minerId);
  });

  it('one large step equals the same span in 1 s steps in expectation (sub-stepping)', () => {
    const big = miner({ initialState: 'sleeping', startupSeconds: 60 });
    big.setMining(true);
    big.step(600);
    expect(big.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(big.reading(0).hashrate5sThs).toBeGreaterThan(260);
    expect(big.cgminerStatus().elapsedS).toBe(600);
  });

  it('a sleeping miner that reboots comes back mining through its start-up, keeping its power target', () => {
    const m = miner({ startupSeconds: 60 });
    m.setPowerTarget(3000);
    m.setMining(false);
    run(m, 30);
    expect(m.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
    m.reboot();
    expect(m.miningState).toBe(MiningState.MINING_STATE_RAMPING);
    run(m, 120);
    expect(m.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect(m.powerTargetW).toBe(3000);
    expect(m.reading(0).powerW).toBeGreaterThan(2900);
  });

  it('readInto rewrites an earlier reading in place with what reading() would return', () => {
    const m = miner({ initialState: 'sleeping', startupSeconds: 60 });
    const kept = m.reading(1_000);
    const lists = [kept.boardTemperaturesC, kept.chipTemperaturesC, kept.fanRpm];
    m.setMining(true);
    run(m, 90, 0.5);
    const fresh = m.reading(2_000);
    expect(m.readInto(kept, 2_000)).toBe(kept);
    expect(kept).toEqual(fresh);
    expect(kept.miningState).toBe(MiningState.MINING_STATE_MINING);
    expect([kept.boardTemperaturesC, kept.chipTemperaturesC, kept.fanRpm]).toEqual(lists);
    expect(kept.boardTemperaturesC).toBe(lists[0]);
  });
});
