import { describe, expect, it } from 'vitest';
import { createMiningIntent, GRID_ACTOR } from './mining-intent.js';
import type { CommandPayload, CommandRecord } from './model.js';

const rec = (payload: CommandPayload, actor: string, atMs: number, state: CommandRecord['state'] = 'succeeded'): CommandRecord => ({
  id: `c-${atMs}`, siteId: 'texas-1', payload, state, actor, workloadId: null, createdAtMs: atMs, deadlineMs: atMs + 1000,
  sentAtMs: null, ackedAtMs: null, finishedAtMs: atMs, attempts: 1, reasonCode: 'ok', message: null, devices: null, details: null,
});
const ASICS = ['asic-texas-1-00001', 'asic-texas-1-00002'];

describe('mining intent', () => {
  it('every ASIC is meant to mine until someone says otherwise', () => {
    const i = createMiningIntent(() => ASICS);
    expect(i.meantOn('texas-1')).toEqual(ASICS);
    expect(i.of(ASICS[0]!)).toBeUndefined();
  });

  it('follows operators and the engine, not the grid, and only succeeded commands', () => {
    const i = createMiningIntent(() => ASICS);
    i.observe(rec({ type: 'set_mining', enabled: false, deviceIds: [ASICS[0]!], powerTargetW: null }, 'operator:alice', 10));
    i.observe(rec({ type: 'curtail', reason: 'grid' }, GRID_ACTOR, 20));
    i.observe(rec({ type: 'set_mining', enabled: false, deviceIds: [], powerTargetW: null }, 'system:economics', 30, 'failed'));
    expect(i.meantOn('texas-1')).toEqual([ASICS[1]]);
    i.observe(rec({ type: 'curtail', reason: 'price' }, 'system:economics', 40));
    expect(i.meantOn('texas-1')).toEqual([]);
  });

  it('counts on/off time from a switch, not from a new power target', () => {
    const i = createMiningIntent(() => ASICS);
    i.observe(rec({ type: 'set_mining', enabled: true, deviceIds: [], powerTargetW: 3000 }, 'system:economics', 10));
    expect(i.of(ASICS[0]!)!.atMs).toBeNull(); // was mining already
    i.observe(rec({ type: 'set_mining', enabled: false, deviceIds: [], powerTargetW: null }, 'system:economics', 20));
    i.observe(rec({ type: 'set_mining', enabled: true, deviceIds: [], powerTargetW: null }, 'system:economics', 30));
    i.observe(rec({ type: 'set_mining', enabled: true, deviceIds: [], powerTargetW: 3200 }, 'system:economics', 40));
    expect(i.of(ASICS[0]!)).toMatchObject({ enabled: true, powerTargetW: 3200, atMs: 30 });
  });
});
