import { describe, expect, it } from 'vitest';
import { PriceBook } from './price-book.js';

const tick = (price: number, tsMs: number) => ({ price, tsMs, receivedAtMs: tsMs });

describe('price book', () => {
  it('holds the latest tick received, whatever its own clock says', () => {
    const b = new PriceBook();
    b.set('btc_usd', null, tick(90_000, 5_000_000)); // a fast sim clock, ahead of the wall
    b.set('btc_usd', null, tick(95_000, 1_000)); // a wall-clock publisher
    expect(b.btcUsd!.price).toBe(95_000);
    expect(b.view().btc_usd!.price).toBe(95_000);
  });

  it('gives the engine the highest power price since its last decision, then starts over', () => {
    const b = new PriceBook();
    expect(b.takePowerPeak('texas-1')).toBeNull();
    b.set('power', 'texas-1', tick(0.05, 1));
    b.set('power', 'texas-1', tick(5, 2));
    b.set('power', 'texas-1', tick(0.06, 3));
    b.set('power', 'texas-2', tick(0.04, 3));
    expect(b.power.get('texas-1')!.price).toBe(0.06);
    expect(b.takePowerPeak('texas-1')!.price).toBe(5);
    // nothing new since: the latest stands
    expect(b.takePowerPeak('texas-1')!.price).toBe(0.06);
    expect(b.takePowerPeak('texas-2')!.price).toBe(0.04);
  });

  it('ignores a power tick without a site and unknown feeds', () => {
    const b = new PriceBook();
    b.set('power', null, tick(1, 1));
    b.set('weather', null, tick(1, 1));
    expect(b.power.size).toBe(0);
    expect(b.view()).toEqual({ btc_usd: null, gpu_spot_usd_h: null, power_usd_kwh: {} });
  });
});
