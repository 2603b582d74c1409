// The one command path. Operators (REST, gRPC Fleet), the scheduler and the economic engine all
// submit here. A command is stored (awaited) before it is sent; every later transition is kept
// in memory first and written behind in batches, which is safe because the agent applies a
// command id at most once: a transition lost to a crash only means a redelivery that the agent
// answers with its earlier result.
//
// It hears agent streams through the event stream (control-plane/events.ts: site.connected,
// site.disconnected, agent.ack, agent.result, emitted by grpc/agent-gateway.ts), counts and logs
// the answers it refuses, and says every change as command.changed. A part that must move its
// own state before a final result's waiters hear of it (the workload service) registers a
// follow-up with beforeFinal, which the bus awaits.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { CommandOutcome, type Command, type CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import type { ControlMessage } from '../../proto/gen/hcp/v1/gateway.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { createBatchWriter } from '../db/batch-writer.js';
import { CommandsRejectedError, insertCommands, loadLiveCommands, updateCommandStates } from '../db/command-store.js';
import { HcpError } from '../errors.js';
import type { EventStream } from '../events.js';
import type { Metrics } from '../metrics.js';
import { limitedLog } from '../mqtt/log-limit.js';
import { canTransition, isFinal, type CommandPayload, type CommandRecord, type CommandState } from './model.js';
import { sanitizeResult } from './result-sanitizer.js';

export interface NewCommand {
  id: string;
  siteId: string;
  payload: CommandPayload;
  actor: string;
  workloadId?: string | null;
  deadlineMs: number;
  details?: Record<string, unknown> | null;
}

export interface CommandBusDeps {
  db: Db;
  audit: AuditWriter;
  metrics: Metrics;
  log: Logger;
  /** writes to a site's open agent stream; false when the site has none */
  send: (siteId: string, msg: ControlMessage) => boolean;
  /** agent streams are heard here, and command.changed said here (absent: driven by direct calls) */
  events?: EventStream;
  flushMs?: number;
  /** finished commands stay in memory this long for fast reads and redelivered results */
  keepFinishedMs?: number;
}

export type CommandEvent = CommandRecord;

export function toProtoCommand(r: CommandRecord): Command {
  const base = { commandId: r.id, deadlineMs: r.deadlineMs, actor: r.actor };
  const p = r.payload;
  switch (p.type) {
    case 'allocate':
      return { ...base, action: { $case: 'allocate', value: { workloadId: p.workloadId, deviceIds: p.deviceIds } } };
    case 'release':
      return { ...base, action: { $case: 'release', value: { workloadId: p.workloadId, deviceIds: p.deviceIds } } };
    case 'set_mining':
      return { ...base, action: { $case: 'setMining', value: { enabled: p.enabled, deviceIds: p.deviceIds, powerTargetW: p.powerTargetW ?? 0 } } };
    case 'curtail':
      return { ...base, action: { $case: 'curtail', value: { reason: p.reason } } };
    case 'arm_grid_trip':
      return { ...base, action: { $case: 'armGridTrip', value: { enabled: p.enabled, region: p.region, thresholdHz: p.thresholdHz, deviceIds: p.deviceIds } } };
  }
}

export async function createCommandBus(d: CommandBusDeps) {
  const live = new Map<string, CommandRecord>();
  const finished = new Map<string, CommandRecord>();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const keepFinishedMs = d.keepFinishedMs ?? 10 * 60_000;
  let closed = false;
  /** follow-ups awaited, in registration order, when a command is final, before waiters hear of it */
  const followUps: Array<(rec: CommandRecord) => Promise<void>> = [];
  const say = (r: CommandRecord) => {
    events.emit('event', r);
    d.events?.emit('command.changed', { record: r });
  };
  const followUp = async (r: CommandRecord) => {
    for (const f of followUps) await f(r).catch((err) => d.log.error({ err, command: r.id }, 'command follow-up failed'));
  };

  // Commands that were in flight when the control plane stopped: back to pending, to be
  // delivered again when their site's agent connects.
  for (const r of await loadLiveCommands<CommandRecord>(d.db)) {
    if (r.state !== 'pending') r.state = 'pending';
    live.set(r.id, r);
  }
  if (live.size) d.log.info({ commands: live.size }, 'resuming commands that were not final');

  // Transitions are written behind (batch-writer.ts), one row per command: a later state of a
  // command takes the place of an earlier one not yet written. A state the database refuses is
  // dead-lettered: the command keeps its state in memory (and its waiters hear of it), its row
  // keeps the last state written, and the rest of the batch lands. Retrying it would hold every
  // later transition behind it. The bound counts commands, not transitions; past it the oldest
  // command's state is dropped (logged, hcp_db_dropped_rows_total{writer="commands"}): its row
  // keeps an earlier state, which a restart only redelivers.
  const states = createBatchWriter<CommandRecord>({
    name: 'commands',
    log: d.log,
    write: (rows) => updateCommandStates(d.db, rows),
    identify: (r) => ({ site: r.siteId, command: r.id, type: r.payload.type, state: r.state }),
    key: (r) => r.id,
    snapshot: (r) => ({ ...r }),
    flushIntervalMs: d.flushMs ?? 20,
    maxBuffered: 200_000,
    metrics: {
      rejected: (n) => d.metrics.dbRejectedRows.inc({ writer: 'commands' }, n),
      dropped: (n, why) => d.metrics.dbDroppedRows.inc({ writer: 'commands', why }, n),
    },
  });
  const flush = () => states.flush();

  const transition = (r: CommandRecord, to: CommandState, now: number, extra: Partial<CommandRecord> = {}): boolean => {
    if (!canTransition(r.state, to)) return false;
    Object.assign(r, extra, { state: to });
    if (to === 'sent') {
      r.sentAtMs = now;
      r.attempts += 1;
    } else if (to === 'acked') r.ackedAtMs = now;
    states.add(r);
    d.metrics.commandTransitions.inc({ type: r.payload.type, state: to });
    if (isFinal(to)) {
      r.finishedAtMs = now;
      live.delete(r.id);
      finished.set(r.id, r);
      setTimeout(() => finished.delete(r.id), keepFinishedMs).unref();
      d.metrics.commandRoundTrip.observe({ type: r.payload.type, state: to }, (now - r.createdAtMs) / 1000);
      d.audit.write({
        actor: to === 'expired' ? 'system' : `agent:${r.siteId}`,
        action: `command.${to}`,
        subject: r.id,
        details: { site: r.siteId, type: r.payload.type, reason_code: r.reasonCode, message: r.message, devices: r.devices?.length ?? 0 },
        timeMs: now,
      });
      const done = followUps.length ? followUp(r) : Promise.resolve();
      void done.then(() => say(r));
    } else {
      say(r);
    }
    return true;
  };

  const deliver = (r: CommandRecord, now: number) => {
    if (r.state !== 'pending') return;
    if (d.send(r.siteId, { body: { $case: 'command', value: toProtoCommand(r) } })) transition(r, 'sent', now);
  };

  const expiryTimer = setInterval(() => {
    const now = Date.now();
    for (const r of live.values()) {
      if (now >= r.deadlineMs) transition(r, 'expired', now, { reasonCode: 'expired', message: `no result before the deadline (${new Date(r.deadlineMs).toISOString()})` });
    }
  }, 100);
  expiryTimer.unref();

  const api = {
    /** stores the commands (awaited), then sends those whose site is connected */
    async submit(items: NewCommand[]): Promise<CommandRecord[]> {
      if (closed) throw new Error('command bus is closed');
      const now = Date.now();
      const recs: CommandRecord[] = items.map((c) => ({
        id: c.id, siteId: c.siteId, payload: c.payload, state: 'pending', actor: c.actor, workloadId: c.workloadId ?? null,
        createdAtMs: now, deadlineMs: c.deadlineMs, sentAtMs: null, ackedAtMs: null, finishedAtMs: null, attempts: 0,
        reasonCode: null, message: null, devices: null, details: c.details ?? null,
      }));
      try {
        await insertCommands(d.db, recs);
      } catch (err) {
        if (!(err instanceof CommandsRejectedError)) throw err;
        throw new HcpError('invalid_argument', err.message, 'db_rejected', { sqlstate: err.sqlstate, commands: err.commandIds });
      }
      for (const r of recs) {
        live.set(r.id, r);
        d.metrics.commandTransitions.inc({ type: r.payload.type, state: 'pending' });
        d.audit.write({ actor: r.actor, action: `command.submitted`, subject: r.id, details: { site: r.siteId, ...r.payload }, timeMs: now });
        say(r);
      }
      for (const r of recs) deliver(r, now);
      return recs;
    },

    /** an agent's stream is up: everything not final for its site goes down it, oldest first */
    siteConnected(siteId: string): void {
      const now = Date.now();
      const mine = [...live.values()].filter((r) => r.siteId === siteId).sort((a, b) => a.createdAtMs - b.createdAtMs);
      for (const r of mine) {
        if (r.state !== 'pending') transition(r, 'pending', now);
        deliver(r, now);
      }
    },

    /** the stream is gone: what was sent is redelivered on reconnect */
    siteDisconnected(siteId: string): void {
      const now = Date.now();
      for (const r of live.values()) if (r.siteId === siteId && r.state !== 'pending') transition(r, 'pending', now);
    },

    /** returns a reason when the ack is refused */
    onAck(siteId: string, commandId: string): string | null {
      const r = live.get(commandId);
      if (!r) return finished.has(commandId) ? null : 'unknown_command';
      if (r.siteId !== siteId) return 'wrong_site';
      if (r.state === 'sent') transition(r, 'acked', Date.now());
      return null;
    },

    onResult(siteId: string, res: CommandResult): string | null {
      const r = live.get(res.commandId);
      if (!r) {
        const f = finished.get(res.commandId);
        if (f && f.siteId !== siteId) return 'wrong_site';
        return f ? null : 'unknown_command';
      }
      if (r.siteId !== siteId) return 'wrong_site';
      const ok = res.outcome === CommandOutcome.COMMAND_OUTCOME_APPLIED;
      // what an agent sends is stored and shown to operators: only in a shape both can take
      const clean = sanitizeResult(res);
      transition(r, ok ? 'succeeded' : 'failed', Date.now(), {
        reasonCode: clean.reasonCode || (ok ? 'ok' : 'failed'),
        message: clean.message || null,
        devices: clean.devices,
      });
      return null;
    },

    get(id: string): CommandRecord | undefined {
      return live.get(id) ?? finished.get(id);
    },

    liveCount: () => live.size,

    /** resolves with the records once every id is final, or as they stand at the timeout */
    async waitFinal(ids: string[], timeoutMs: number): Promise<CommandRecord[]> {
      const pending = new Set(ids.filter((id) => {
        const r = live.get(id) ?? finished.get(id);
        return r && !isFinal(r.state);
      }));
      if (pending.size > 0) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(done, timeoutMs);
          function done() {
            clearTimeout(t);
            events.off('event', on);
            resolve();
          }
          function on(r: CommandRecord) {
            if (isFinal(r.state) && pending.delete(r.id) && pending.size === 0) done();
          }
          events.on('event', on);
        });
      }
      return ids.map((id) => live.get(id) ?? finished.get(id)).filter((r): r is CommandRecord => !!r);
    },

    watch(listener: (r: CommandRecord) => void): () => void {
      events.on('event', listener);
      return () => events.off('event', listener);
    },

    /** a follow-up for every command that becomes final, awaited before its waiters hear of it */
    beforeFinal(fn: (rec: CommandRecord) => Promise<void>): void {
      followUps.push(fn);
    },

    flush,

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const off of unsubscribe) off();
      clearInterval(expiryTimer);
      await states.close();
    },
  };

  // What agents say on their streams. A refused answer (a command that was never sent to this
  // site, or is unknown) is counted and logged here, where it is refused, a few times a window.
  const warn = limitedLog(d.log);
  const refused = (siteId: string, kind: string, commandId: string, reason: string | null) => {
    if (!reason) return;
    d.metrics.commandMessagesRejected.inc({ reason });
    warn(`refused:${kind}`, { site: siteId, command: commandId.slice(0, 128), reason, message: kind }, 'agent answered a command that was not sent to it');
  };
  const unsubscribe = d.events
    ? [
      d.events.on('site.connected', (e) => api.siteConnected(e.siteId)),
      d.events.on('site.disconnected', (e) => api.siteDisconnected(e.siteId)),
      d.events.on('agent.ack', (e) => refused(e.siteId, 'commandAck', e.commandId, api.onAck(e.siteId, e.commandId))),
      d.events.on('agent.result', (e) => refused(e.siteId, 'commandResult', e.result.commandId, api.onResult(e.siteId, e.result))),
    ]
    : [];
  return api;
}

export type CommandBus = Awaited<ReturnType<typeof createCommandBus>>;
