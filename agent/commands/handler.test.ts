import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { CommandOutcome, type Command, type CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import type { AgentMessage } from '../../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';
import { createManualClock } from '../../sim-hardware/clock.js';
import { createSimFleet } from '../../sim-hardware/fleet.js';
import type { CommandableDriver, DeviceOp, DeviceOpResult } from '../drivers/driver.js';
import { createSimDriver } from '../../sim-hardware/agent-driver.js';
import { createAgentMetrics } from '../metrics.js';
import { createCommandHandler } from './handler.js';
import { openResultJournal, type ResultJournal } from './result-journal.js';

const NOW = 1_750_000_000_000;

function setup(opts: { wrap?: (d: CommandableDriver) => CommandableDriver; journal?: ResultJournal } = {}) {
  const clock = createManualClock(NOW);
  const fleet = createSimFleet({ site: 'texas-1', gpus: 2, asics: 3, asicModel: 's21-xp', seed: 3, clock, startupSeconds: 1 });
  const base = createSimDriver(fleet);
  const driver = opts.wrap ? opts.wrap(base) : base;
  const sent: AgentMessage[] = [];
  let changed = 0;
  const workloads = new Map<string, string>();
  const metrics = createAgentMetrics();
  const handler = createCommandHandler({
    drivers: [driver],
    send: (m) => sent.push(m),
    gpuWorkload: (id) => workloads.get(id) ?? '',
    changed: () => changed++,
    armGridTrip: () => ({ ok: false, code: 'unsupported', message: 'not in this test' }),
    log: pino({ level: 'silent' }),
    metrics,
    now: () => clock.now(),
    journal: opts.journal,
  });
  const results = () => sent.flatMap((m) => (m.body?.$case === 'commandResult' ? [m.body.value] : []));
  const acks = () => sent.flatMap((m) => (m.body?.$case === 'commandAck' ? [m.body.value.commandId] : []));
  const read = async (ms: number) => {
    clock.advance(ms);
    return driver.read(clock.now());
  };
  return { clock, fleet, driver, handler, sent, results, acks, read, workloads, metrics, changed: () => changed };
}

const cmd = (id: string, action: Command['action'], deadlineMs = NOW + 60_000): Command => ({
  commandId: id, deadlineMs, actor: 'test', action,
});

describe('agent command handler', () => {
  it('acks at once, applies mining off to every ASIC, answers with their states and samples again', async () => {
    const s = setup();
    s.handler.handle(cmd('c-1', { $case: 'setMining', value: { enabled: false, deviceIds: [], powerTargetW: 0 } }));
    expect(s.acks()).toEqual(['c-1']);
    await s.handler.idle();
    const [r] = s.results();
    expect(r).toMatchObject({ commandId: 'c-1', outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok' });
    expect(r!.devices.map((d) => d.deviceId).sort()).toEqual(['asic-texas-1-00001', 'asic-texas-1-00002', 'asic-texas-1-00003']);
    expect(s.changed()).toBe(1);
    const t = await s.read(10_000);
    for (const a of t.asics) {
      expect(a.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
      expect(a.hashrate5sThs).toBeLessThan(1);
    }
  });

  it('applies a command id at most once: a redelivery repeats the earlier result', async () => {
    let applies = 0;
    const s = setup({
      wrap: (d) => ({ ...d, inventory: () => d.inventory(), read: (n) => d.read(n), apply: (ops: DeviceOp[]) => { applies++; return d.apply(ops); } }),
    });
    const c = cmd('c-2', { $case: 'allocate', value: { workloadId: 'wl-1', deviceIds: ['gpu-texas-1-0001'] } });
    s.handler.handle(c);
    s.handler.handle(c); // redelivered while the first is still in flight
    await s.handler.idle();
    s.handler.handle(c); // redelivered after the result was sent (e.g. after a reconnect)
    await s.handler.idle();
    expect(applies).toBe(1);
    expect(s.acks()).toEqual(['c-2', 'c-2', 'c-2']);
    const rs = s.results();
    expect(rs).toHaveLength(2);
    expect(rs[1]).toEqual(rs[0]);
    expect(rs[0]!.devices).toEqual([{ deviceId: 'gpu-texas-1-0001', state: 'busy', workloadId: 'wl-1', powerTargetW: 0 }]);
  });

  it('with a journal, at most once holds across a restart: a stale redelivery does not undo a later command', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-journal-'));
    try {
      const off = cmd('c-off', { $case: 'setMining', value: { enabled: false, deviceIds: [], powerTargetW: 0 } });
      const on = cmd('c-on', { $case: 'setMining', value: { enabled: true, deviceIds: [], powerTargetW: 0 } });
      const before = setup({ journal: openResultJournal(dir, 100) });
      before.handler.handle(off);
      before.handler.handle(on);
      await before.handler.idle();

      // The agent restarts; its devices are as the last command left them (mining). The control
      // plane never recorded c-off's result, so it sends c-off again.
      const after = setup({ journal: openResultJournal(dir, 100) });
      after.handler.handle(off);
      await after.handler.idle();
      expect(after.results()).toEqual([before.results()[0]]);
      expect((await after.read(10_000)).asics.map((a) => a.miningState)).not.toContain(MiningState.MINING_STATE_SLEEPING);
      expect(after.changed()).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('journals a command before applying it; one cut off mid-apply is answered outcome_unknown after the restart, never applied again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-journal-'));
    const file = join(dir, 'command-results.jsonl');
    try {
      const off = cmd('c-cut', { $case: 'setMining', value: { enabled: false, deviceIds: [], powerTargetW: 0 } });
      let onDiskAtApply = '';
      let applying!: () => void;
      const reached = new Promise<void>((resolve) => (applying = resolve));
      // the apply never finishes: the power goes while the miners are being told
      const before = setup({
        journal: openResultJournal(dir, 100),
        wrap: (d) => ({ ...d, inventory: () => d.inventory(), read: (n) => d.read(n), apply: () => {
          onDiskAtApply = readFileSync(file, 'utf8');
          applying();
          return new Promise<DeviceOpResult[]>(() => {});
        } }),
      });
      before.handler.handle(off);
      await reached;
      // the journal had the command before any device was touched
      expect(onDiskAtApply).toContain('"applying"');
      expect(onDiskAtApply).toContain('c-cut');
      expect(before.results()).toEqual([]);

      // the restart (the first journal never closed, as after a power loss)
      let applies = 0;
      const journal = openResultJournal(dir, 100);
      expect(journal.unfinished.map((u) => u.commandId)).toEqual(['c-cut']);
      const after = setup({
        journal,
        wrap: (d) => ({ ...d, inventory: () => d.inventory(), read: (n) => d.read(n), apply: (ops: DeviceOp[]) => { applies++; return d.apply(ops); } }),
      });
      // the control plane redelivers the command it has no result for
      after.handler.handle(off);
      await after.handler.idle();
      expect(applies).toBe(0);
      const [r] = after.results();
      expect(r).toMatchObject({ commandId: 'c-cut', outcome: CommandOutcome.COMMAND_OUTCOME_FAILED, reasonCode: 'outcome_unknown' });
      expect(await after.metrics.commands.get()).toMatchObject({ values: [expect.objectContaining({ labels: { type: 'setMining', outcome: 'unknown' }, value: 1 })] });
      // its answer is journaled too: a third start repeats it, with nothing left unfinished
      const third = openResultJournal(dir, 100);
      expect(third.unfinished).toEqual([]);
      expect(third.loaded.map((x) => [x.commandId, x.reasonCode])).toEqual([['c-cut', 'outcome_unknown']]);
      // a new command is applied as usual
      after.handler.handle(cmd('c-next', { $case: 'setMining', value: { enabled: false, deviceIds: [], powerTargetW: 0 } }));
      await after.handler.idle();
      expect(applies).toBe(1);
      expect(after.results()[1]).toMatchObject({ commandId: 'c-next', outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('journal: drops a torn line, and keeps the newest results when it compacts', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hcp-journal-'));
    try {
      const result = (i: number): CommandResult => ({ commandId: `c-${i}`, outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok', message: '', devices: [], appliedAtMs: NOW + i });
      const j = openResultJournal(dir, 3);
      for (let i = 1; i <= 5; i++) j.append(result(i));
      expect(readFileSync(join(dir, 'command-results.jsonl'), 'utf8').trim().split('\n')).toHaveLength(5);
      j.append(result(6)); // 6 lines = twice the limit: rewritten with the newest 3
      expect(readFileSync(join(dir, 'command-results.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
      appendFileSync(join(dir, 'command-results.jsonl'), '{"commandId":"c-7","outc'); // a crash mid-write
      const again = openResultJournal(dir, 3);
      expect(again.skipped).toBe(1);
      expect(again.loaded.map((r) => r.commandId)).toEqual(['c-4', 'c-5', 'c-6']);
      again.append(result(8));
      expect(openResultJournal(dir, 3).loaded.map((r) => r.commandId)).toEqual(['c-5', 'c-6', 'c-8']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('applies in arrival order: off then on ends mining', async () => {
    const s = setup();
    s.handler.handle(cmd('off', { $case: 'curtail', value: { reason: 'grid' } }));
    s.handler.handle(cmd('on', { $case: 'setMining', value: { enabled: true, deviceIds: [], powerTargetW: 0 } }));
    await s.handler.idle();
    expect(s.results().map((r) => r.commandId)).toEqual(['off', 'on']);
    const t = await s.read(30_000);
    for (const a of t.asics) expect(a.miningState).toBe(MiningState.MINING_STATE_MINING);
  });

  it('refuses a command past its deadline without touching the devices', async () => {
    const s = setup();
    s.handler.handle(cmd('late', { $case: 'curtail', value: { reason: 'x' } }, NOW - 1));
    await s.handler.idle();
    expect(s.results()[0]).toMatchObject({ commandId: 'late', outcome: CommandOutcome.COMMAND_OUTCOME_FAILED, reasonCode: 'expired' });
    const t = await s.read(10_000);
    for (const a of t.asics) expect(a.miningState).not.toBe(MiningState.MINING_STATE_SLEEPING);
  });

  it('fails a command naming a device that is not at this site, and applies the rest', async () => {
    const s = setup();
    s.handler.handle(cmd('c-3', { $case: 'setMining', value: { enabled: false, deviceIds: ['asic-texas-1-00001', 'asic-texas-2-00001'], powerTargetW: 0 } }));
    await s.handler.idle();
    const r = s.results()[0] as CommandResult;
    expect(r.outcome).toBe(CommandOutcome.COMMAND_OUTCOME_FAILED);
    expect(r.reasonCode).toBe('unknown_device');
    expect(r.message).toContain('asic-texas-2-00001');
    const t = await s.read(10_000);
    expect(t.asics.find((a) => a.deviceId === 'asic-texas-1-00001')!.miningState).toBe(MiningState.MINING_STATE_SLEEPING);
  });

  it('releases by workload id: only the GPUs that run it', async () => {
    const s = setup();
    s.handler.handle(cmd('a', { $case: 'allocate', value: { workloadId: 'wl-9', deviceIds: ['gpu-texas-1-0002'] } }));
    await s.handler.idle();
    s.workloads.set('gpu-texas-1-0002', 'wl-9');
    s.handler.handle(cmd('r', { $case: 'release', value: { workloadId: 'wl-9', deviceIds: [] } }));
    await s.handler.idle();
    expect(s.results()[1]!.devices).toEqual([{ deviceId: 'gpu-texas-1-0002', state: 'idle', workloadId: '', powerTargetW: 0 }]);
  });

  it('answers a driver that throws with driver_error and keeps serving later commands', async () => {
    let fail = true;
    const s = setup({
      wrap: (d) => ({ ...d, inventory: () => d.inventory(), read: (n) => d.read(n), apply: async (ops: DeviceOp[]): Promise<DeviceOpResult[]> => {
        if (fail) throw new Error('bus error');
        return d.apply(ops);
      } }),
    });
    s.handler.handle(cmd('x', { $case: 'curtail', value: { reason: 'x' } }));
    await s.handler.idle();
    fail = false;
    s.handler.handle(cmd('y', { $case: 'curtail', value: { reason: 'y' } }));
    await s.handler.idle();
    expect(s.results().map((r) => [r.commandId, r.reasonCode])).toEqual([['x', 'driver_error'], ['y', 'ok']]);
  });
});
