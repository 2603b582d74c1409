// Applies commands from the control plane to the site's devices through the drivers.
// - Every command is acked at once, then applied in arrival order (an off followed by an on
//   must end on).
// - A command id is applied at most once: a redelivery (after a reconnect) only repeats the
//   earlier result — after an agent restart too: the journal (agent/commands/result-journal.ts,
//   in the state dir) holds "applying" (fsynced before the command touches a device) and the
//   result (fsynced before it is sent). A command the agent stopped in the middle of (applying,
//   no result) is not applied again after the restart: it is answered FAILED with reason
//   `outcome_unknown` (commands.proto has no third outcome), and the devices' telemetry shows
//   what took effect. A command that cannot be journaled is not applied (`journal_error`).
// - Past its deadline a command is refused, not applied late.
import type { Logger } from 'pino';
import { CommandOutcome, type ArmGridTrip, type Command, type CommandResult, type DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import { DeviceKind } from '../../proto/gen/hcp/v1/gateway.js';
import type { AgentMessage } from '../../proto/gen/hcp/v1/gateway.js';
import type { CommandableDriver, DeviceOp, DeviceOpResult } from '../drivers/driver.js';
import type { ArmOutcome } from '../grid/grid-trip.js';
import type { ResultJournal } from './result-journal.js';
import type { AgentMetrics } from '../metrics.js';

export interface CommandHandlerDeps {
  drivers: CommandableDriver[];
  /** called once a command's apply resolved, before its result is journaled or sent (the chaos hook: agent.ts) */
  afterApply?: (commandId: string) => void;
  /** awaited after a command is journaled applying and before its devices are touched (the slow-devices chaos hook: agent.ts) */
  beforeApply?: () => Promise<void>;
  send: (m: AgentMessage) => void;
  /** the workload each GPU runs, as last read */
  gpuWorkload: (deviceId: string) => string;
  /** after a command changed devices: sample now so telemetry shows it */
  changed: () => void;
  /** the local under-frequency trip (agent/grid/grid-trip.ts) */
  armGridTrip: (c: ArmGridTrip) => ArmOutcome;
  log: Logger;
  metrics: AgentMetrics;
  now?: () => number;
  rememberResults?: number;
  /** results kept across restarts (agent/commands/result-journal.ts) */
  journal?: Pick<ResultJournal, 'loaded' | 'unfinished' | 'applying' | 'append'>;
}

export function createCommandHandler(d: CommandHandlerDeps) {
  const now = d.now ?? Date.now;
  const owner = new Map<string, CommandableDriver>();
  const kind = new Map<string, DeviceKind>();
  for (const drv of d.drivers) {
    for (const dev of drv.inventory()) {
      owner.set(dev.id, drv);
      kind.set(dev.id, dev.kind);
    }
  }
  const asics = [...kind].filter(([, k]) => k === DeviceKind.DEVICE_KIND_ASIC).map(([id]) => id);
  const gpus = [...kind].filter(([, k]) => k === DeviceKind.DEVICE_KIND_GPU).map(([id]) => id);
  const results = new Map<string, CommandResult>();
  const inFlight = new Set<string>();
  const limit = d.rememberResults ?? 10_000;
  let queue: Promise<void> = Promise.resolve();

  for (const r of d.journal?.loaded ?? []) results.set(r.commandId, r);
  const remember = (r: CommandResult) => {
    try {
      d.journal?.append(r);
    } catch (err) {
      d.log.error({ err, command: r.commandId }, 'could not journal the command result; a redelivery after a restart would apply it again');
    }
    results.set(r.commandId, r);
    if (results.size > limit) results.delete(results.keys().next().value!);
  };

  const failure = (c: Pick<Command, 'commandId'>, code: string, message: string): CommandResult => ({
    commandId: c.commandId, outcome: CommandOutcome.COMMAND_OUTCOME_FAILED, reasonCode: code, message, devices: [], appliedAtMs: now(),
  });

  // cut off mid-apply before the restart: answered, never applied again
  for (const u of d.journal?.unfinished ?? []) {
    const r = failure(u, 'outcome_unknown', `the agent stopped while applying this ${u.type || 'command'}; it is not applied again: the devices' telemetry shows what took effect`);
    remember(r);
    d.metrics.commands.inc({ type: u.type || 'none', outcome: 'unknown' });
    d.log.warn({ command: u.commandId, type: u.type, journaledAtMs: u.atMs }, 'command found applying without a result after a restart: answered outcome_unknown, not applied again');
  }

  function opsOf(c: Command): DeviceOp[] | string {
    const a = c.action;
    if (!a) return 'the command has no action';
    switch (a.$case) {
      case 'allocate':
        if (!a.value.workloadId || a.value.deviceIds.length === 0) return 'allocate needs a workload id and GPUs';
        return a.value.deviceIds.map((deviceId) => ({ kind: 'assign' as const, deviceId, workloadId: a.value.workloadId }));
      case 'release': {
        const ids = a.value.deviceIds.length ? a.value.deviceIds : gpus.filter((g) => d.gpuWorkload(g) === a.value.workloadId);
        return ids.map((deviceId) => ({ kind: 'release' as const, deviceId }));
      }
      case 'setMining': {
        const ids = a.value.deviceIds.length ? a.value.deviceIds : asics;
        const target = a.value.powerTargetW > 0 ? a.value.powerTargetW : null;
        return ids.map((deviceId) => ({ kind: 'mining' as const, deviceId, enabled: a.value.enabled, powerTargetW: target }));
      }
      case 'curtail':
        return asics.map((deviceId) => ({ kind: 'mining' as const, deviceId, enabled: false, powerTargetW: null }));
      case 'armGridTrip':
        return 'arm_grid_trip has no device ops';
    }
  }

  async function apply(c: Command): Promise<CommandResult> {
    if (now() > c.deadlineMs) return failure(c, 'expired', 'the deadline passed before the agent could apply it');
    if (c.action?.$case === 'armGridTrip') {
      const o = d.armGridTrip(c.action.value);
      if (!o.ok) return failure(c, o.code, o.message);
      return { commandId: c.commandId, outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok', message: `${o.devices.length} ASICs covered`, devices: o.devices, appliedAtMs: now() };
    }
    const ops = opsOf(c);
    if (typeof ops === 'string') return failure(c, 'invalid_command', ops);
    const byDriver = new Map<CommandableDriver, DeviceOp[]>();
    const outcomes: DeviceOpResult[] = [];
    for (const op of ops) {
      const drv = owner.get(op.deviceId);
      if (!drv) {
        outcomes.push({ deviceId: op.deviceId, ok: false, code: 'unknown_device', message: `${op.deviceId} is not at this site`, state: { deviceId: op.deviceId, state: 'unknown', workloadId: '', powerTargetW: 0 } });
        continue;
      }
      byDriver.set(drv, [...(byDriver.get(drv) ?? []), op]);
    }
    const applied = await Promise.all([...byDriver].map(([drv, list]) => drv.apply(list)));
    outcomes.push(...applied.flat());
    const failed = outcomes.filter((o) => !o.ok);
    const devices: DeviceState[] = outcomes.map((o) => o.state);
    return {
      commandId: c.commandId,
      outcome: failed.length ? CommandOutcome.COMMAND_OUTCOME_FAILED : CommandOutcome.COMMAND_OUTCOME_APPLIED,
      reasonCode: failed.length ? failed[0]!.code : 'ok',
      message: failed.length
        ? `${failed.length} of ${outcomes.length} devices failed: ${failed.slice(0, 3).map((f) => `${f.deviceId} ${f.code}${f.message ? ` (${f.message})` : ''}`).join('; ')}`
        : `${outcomes.length} devices`,
      devices,
      appliedAtMs: now(),
    };
  }

  const reply = (r: CommandResult) => d.send({ body: { $case: 'commandResult', value: r } });

  return {
    handle(c: Command): void {
      d.send({ body: { $case: 'commandAck', value: { commandId: c.commandId } } });
      const earlier = results.get(c.commandId);
      if (earlier) return reply(earlier);
      if (inFlight.has(c.commandId)) return;
      inFlight.add(c.commandId);
      queue = queue.then(async () => {
        let r: CommandResult;
        const type = c.action?.$case ?? 'none';
        let journaled = true;
        try {
          // on disk before any device is touched: a power loss mid-apply cannot lead to a second apply
          d.journal?.applying({ commandId: c.commandId, type, atMs: now() });
        } catch (err) {
          journaled = false;
          d.log.error({ err, command: c.commandId }, 'could not journal the command; it is not applied');
        }
        if (!journaled) r = failure(c, 'journal_error', 'the agent could not journal the command, so it did not apply it (at most once)');
        else {
          try {
            await d.beforeApply?.();
            r = await apply(c);
            d.afterApply?.(c.commandId);
          } catch (err) {
            r = failure(c, 'driver_error', (err as Error).message);
          }
        }
        inFlight.delete(c.commandId);
        remember(r);
        d.metrics.commands.inc({ type, outcome: r.outcome === CommandOutcome.COMMAND_OUTCOME_APPLIED ? 'applied' : 'failed' });
        d.log.info({ command: c.commandId, type, actor: c.actor, outcome: r.reasonCode, devices: r.devices.length }, 'command applied');
        reply(r);
        d.changed();
      });
    },
    /** resolves when every command received so far is answered (tests, shutdown) */
    idle: () => queue,
  };
}
