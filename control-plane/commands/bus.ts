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
//
// Several control planes on one database (docs/reliability.md, "Several control planes"): a
// command is delivered by whichever replica holds its site's agent stream. The issuer stores it
// and, when the stream is elsewhere, says so on the replicas' channel (ha/notify.ts); the
// holder reads it from the table and sends it. The holder's transitions are written (behind,
// conditionally: db/command-store.ts) and then said on the channel, so the issuer's record, its
// waiters and its listeners follow. A stream that opens here reads every command not final of its
// site from the table, so nothing is stranded on a replica with no stream; the listening
// connection's every (re)connect, and a sweep every resyncMs, re-read what a lost notice missed.
// Expiry is the leader's (ha/lease.ts): a fenced UPDATE by deadline, said on the channel.
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { CommandOutcome, type Command, type CommandResult } from '../../proto/gen/hcp/v1/commands.js';
import type { ControlMessage } from '../../proto/gen/hcp/v1/gateway.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { createBatchWriter } from '../db/batch-writer.js';
import { CommandsRejectedError, expireCommands, getCommands, insertCommands, liveCommandsOf, loadLiveCommands, updateCommandStates, type StoredCommand } from '../db/command-store.js';
import { currentFence, FencedError, type Fence } from '../ha/fence.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';
import { LOCAL_NOTIFIER, MAX_NOTICE_BYTES, type Notice, type Notifier } from '../ha/notify.js';
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
  /** where new commands are inserted: the control path's own connections (default db) */
  storeDb?: Db;
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
  /** whether this replica holds the site's agent stream; default: send decides (one replica) */
  hasStream?: (siteId: string) => boolean;
  /** the sites whose streams this replica holds */
  streamSites?: () => string[];
  /** the leader lease: expiry runs only while leading; default: always */
  leader?: Leadership;
  /** the other replicas (ha/notify.ts); default: none */
  notifier?: Notifier;
  /** how often commands of local streams and records of remote ones are re-read; default 5 s */
  resyncMs?: number;
  /** how often the leader sweeps the table for commands past their deadline; default 1 s */
  expirySweepMs?: number;
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

/** a command as it goes down an agent's stream */
const commandMessage = (r: CommandRecord): ControlMessage => ({ body: { $case: 'command', value: toProtoCommand(r) } });

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
  const leader = d.leader ?? ALWAYS_LEADING;
  const notifier = d.notifier ?? LOCAL_NOTIFIER;
  const shared = notifier !== LOCAL_NOTIFIER;
  // A stream counts from its site.connected on (the gateway holds it a little earlier, while it
  // stores the Hello): the redelivery at connect would otherwise send again what a notice or a
  // sweep sent in between.
  const ready = new Set<string>();
  const hasStream = (site: string) => (!d.events || ready.has(site)) && (d.hasStream?.(site) ?? true);
  /** says on the channel, in payloads NOTIFY takes; a failure is logged (the resync sweep covers it) */
  const publish = (k: string, field: string, items: unknown[], extra: Record<string, unknown> = {}) => {
    if (!shared || items.length === 0) return;
    const chunks: unknown[][] = [[]];
    let bytes = 0;
    for (const it of items) {
      const b = JSON.stringify(it).length + 1;
      if (bytes + b > MAX_NOTICE_BYTES && chunks[chunks.length - 1]!.length) {
        chunks.push([]);
        bytes = 0;
      }
      chunks[chunks.length - 1]!.push(it);
      bytes += b;
    }
    for (const c of chunks) {
      void notifier.publish({ k, [field]: c, ...extra }).catch((err) => d.log.warn({ err, kind: k }, 'could not tell the other replicas; their sweep will find it'));
    }
  };

  // Written rows are said to the other replicas; a row the database kept (final already, or sent
  // since by another replica) is read back and adopted where this replica is not the authority.
  const writeStates = async (rows: CommandRecord[]) => {
    const written = new Set(await updateCommandStates(d.db, rows));
    publish('changed', 'c', rows.filter((r) => written.has(r.id)).map((r) => [r.id, r.state]));
    const kept = rows.filter((r) => !written.has(r.id)).map((r) => r.id);
    if (kept.length) void refresh(kept).catch((err) => d.log.warn({ err }, 'could not read back commands the database kept'));
  };
  const states = createBatchWriter<CommandRecord>({
    name: 'commands',
    log: d.log,
    write: writeStates,
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

  const transition = (r: CommandRecord, to: CommandState, now: number, extra: Partial<CommandRecord> = {}, write = true): boolean => {
    if (!canTransition(r.state, to)) return false;
    Object.assign(r, extra, { state: to });
    if (to === 'sent') {
      r.sentAtMs = now;
      r.attempts += 1;
    } else if (to === 'acked') r.ackedAtMs = now;
    if (write) states.add(r);
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
    if (d.send(r.siteId, commandMessage(r))) transition(r, 'sent', now);
  };

  /**
   * What another replica wrote, taken into this replica's records: a final state always; a
   * state not final only for a site whose stream is not here (here, this replica is the one
   * moving it). A final adopted is said to listeners and waiters, without the follow-ups and the
   * audit, which the replica that made it final ran.
   */
  const adopt = (r: CommandRecord, row: StoredCommand) => {
    const to = row.state as CommandState;
    if (to === r.state || isFinal(r.state)) return;
    if (!isFinal(to) && hasStream(r.siteId)) return;
    Object.assign(r, {
      state: to, sentAtMs: row.sentAtMs, ackedAtMs: row.ackedAtMs, finishedAtMs: row.finishedAtMs, attempts: Math.max(r.attempts, row.attempts),
      reasonCode: row.reasonCode, message: row.message, devices: row.devices as CommandRecord['devices'],
    });
    if (isFinal(to)) {
      live.delete(r.id);
      finished.set(r.id, r);
      setTimeout(() => finished.delete(r.id), keepFinishedMs).unref();
    }
    say(r);
  };
  /** reads these commands back and adopts what the table says */
  const refresh = async (ids: string[]) => {
    for (let i = 0; i < ids.length; i += 1000) {
      for (const row of await getCommands<CommandRecord>(d.db, ids.slice(i, i + 1000))) {
        const r = live.get(row.id);
        if (r) adopt(r, row);
      }
    }
  };

  // Expiry is a singleton loop: the leader's, fenced. Records of this replica past their
  // deadline are expired at once (every 100 ms); the table is swept every expirySweepMs for the
  // commands other replicas hold.
  const expireMessage = (r: CommandRecord) => `no result before the deadline (${new Date(r.deadlineMs).toISOString()})`;
  let expiring: Promise<void> | null = null;
  let sweptAt = 0;
  const expire = async (ids: string[] | null) => {
    if (ids === null || ids.length) await states.flush();
    const fence = leader.fence();
    if (!leader.leading()) return;
    let done: Array<{ id: string; finishedAtMs: number }>;
    try {
      done = await expireCommands(d.db, fence, ids);
    } catch (err) {
      if (err instanceof FencedError) d.log.error({ err }, 'command expiry refused: this replica no longer leads');
      else d.log.warn({ err }, 'command expiry failed; the next sweep tries again');
      return;
    }
    for (const e of done) {
      const r = live.get(e.id);
      if (r) transition(r, 'expired', e.finishedAtMs, { reasonCode: 'expired', message: expireMessage(r) }, false);
    }
    publish('changed', 'c', done.map((e) => [e.id, 'expired']));
  };
  const expiryTimer = setInterval(() => {
    if (expiring || closed || !leader.leading()) return;
    const now = Date.now();
    const due = [...live.values()].filter((r) => now >= r.deadlineMs).map((r) => r.id);
    const sweep = now - sweptAt >= (d.expirySweepMs ?? 1000);
    if (!due.length && !sweep) return;
    if (sweep) sweptAt = now;
    expiring = leader.fenced(async () => {
      if (due.length) await expire(due);
      if (sweep) await expire(null);
    }).finally(() => {
      expiring = null;
    });
  }, 100);
  expiryTimer.unref();

  /**
   * Every command not final of these sites, from the table, goes down their streams here (a
   * stream that opened, a notice of new commands, a resync). A record already here is the one
   * kept, so a command is sent once per stream; one the table says is final is adopted.
   */
  const pickUp = async (siteIds: string[], resend: boolean) => {
    const sites = siteIds.filter((s) => hasStream(s));
    if (!sites.length) return;
    await states.flush();
    const rows = await liveCommandsOf<CommandRecord>(d.db, sites);
    const inTable = new Set(rows.map((r) => r.id));
    const stale = [...live.values()].filter((r) => sites.includes(r.siteId) && !inTable.has(r.id)).map((r) => r.id);
    if (stale.length) await refresh(stale);
    const now = Date.now();
    for (const row of rows) {
      if (finished.has(row.id)) continue;
      let r = live.get(row.id);
      if (!r) {
        r = { ...row, state: 'pending' };
        live.set(r.id, r);
      }
      if (!hasStream(r.siteId)) continue;
      if (resend && r.state !== 'pending') transition(r, 'pending', now);
      deliver(r, now);
    }
  };
  const pickUpLogged = (siteIds: string[], resend: boolean) => {
    void pickUp(siteIds, resend).catch((err) => d.log.warn({ err, sites: siteIds.slice(0, 20) }, 'could not read the commands of streams here; the resync sweep tries again'));
  };

  // Submits of one tick are stored in one statement (per fence): a fleet-wide curtail is a
  // thousand sites' reconcilers submitting at once, and a transaction each put a thousand commit
  // round trips before the first send. A command the database refuses for its content fails the
  // whole statement; then each submit is stored alone, so only its own caller is refused.
  //
  // Once stored, every command of the statement goes on the wire before any submit goes on: the
  // submits' own work (audit, listeners, the callers' continuations) waited in line before the
  // last site's send, some 100 µs a site. A submit then moves the ones on the wire to 'sent'
  // (before any answer can be read: that is I/O, after these continuations). Between the two,
  // one turn of the event loop: http2 puts what was written on the sockets in an immediate, and
  // the thousand continuations ran before it, 15–60 ms of them.
  //
  // A submit can wait on something else being durable first (`after`: the claims that caused
  // it, written while the reconciler planned). The statement waits for every part's; a part whose
  // `after` failed is refused with its error, and nothing of it is stored or sent.
  type Storing = {
    recs: CommandRecord[];
    after: Promise<unknown> | null;
    /** called right before these commands go down their streams (submit's beforeSend) */
    before: (() => void) | null;
    resolve: (wired: Set<CommandRecord>) => void;
    reject: (err: unknown) => void;
  };
  /** held, and sent down their sites' streams where there is one; gives those sent */
  const wire = (recs: CommandRecord[], before: (() => void) | null): Set<CommandRecord> => {
    before?.();
    const sent = new Set<CommandRecord>();
    for (const r of recs) {
      live.set(r.id, r);
      if (d.send(r.siteId, commandMessage(r))) sent.add(r);
    }
    return sent;
  };
  /** new commands go in on the control path's connections; alone after a refusal too */
  const storeDb = d.storeDb ?? d.db;
  const storing = new Map<Fence | null, Storing[]>();
  /** statements under way, waited for by close() */
  const stores = new Set<Promise<void>>();
  const storeTogether = async (all: Storing[], fence: Fence | null) => {
    let parts = all;
    if (all.some((p) => p.after)) {
      const settled = await Promise.allSettled(all.map((p) => p.after));
      parts = all.filter((p, i) => {
        const s = settled[i]!;
        if (s.status === 'rejected') p.reject(s.reason);
        return s.status === 'fulfilled';
      });
      if (!parts.length) return;
    }
    try {
      await insertCommands(storeDb, parts.flatMap((p) => p.recs), fence);
      const wired = parts.map((p) => wire(p.recs, p.before));
      await new Promise((r) => setImmediate(r));
      parts.forEach((p, i) => p.resolve(wired[i]!));
    } catch (err) {
      if (parts.length > 1 && err instanceof CommandsRejectedError) {
        // one after another: a thousand statements at once would queue past the pool's timeout
        for (const p of parts) await insertCommands(storeDb, p.recs, fence).then(() => p.resolve(wire(p.recs, p.before)), p.reject);
      } else for (const p of parts) p.reject(err);
    }
  };
  /** the submits gathered under this fence go into their statement now */
  const startStore = (fence: Fence | null, mine: Storing[]) => {
    if (storing.get(fence) !== mine) return;
    storing.delete(fence);
    const p = storeTogether(mine, fence).finally(() => stores.delete(p));
    stores.add(p);
  };
  const store = (recs: CommandRecord[], after: Promise<unknown> | null, before: (() => void) | null): Promise<Set<CommandRecord>> => {
    const fence = currentFence();
    return new Promise<Set<CommandRecord>>((resolve, reject) => {
      let parts = storing.get(fence);
      if (!parts) {
        const mine: Storing[] = (parts = []);
        storing.set(fence, mine);
        setImmediate(() => startStore(fence, mine));
      }
      parts.push({ recs, after, before, resolve, reject });
    });
  };

  const api = {
    /**
     * Stores the commands (awaited; with the other submits of the same tick, or until
     * storeNow), then sends those whose site is connected. With `after`, not stored until it
     * resolves; refused with its error if it rejects. `beforeSend` is called once they are
     * stored, right before they go down the streams: what the agent must have first goes there.
     */
    async submit(items: NewCommand[], opts: { after?: Promise<unknown> | null; beforeSend?: () => void } = {}): Promise<CommandRecord[]> {
      if (closed) throw new Error('command bus is closed');
      const now = Date.now();
      const recs: CommandRecord[] = items.map((c) => ({
        id: c.id, siteId: c.siteId, payload: c.payload, state: 'pending', actor: c.actor, workloadId: c.workloadId ?? null,
        createdAtMs: now, deadlineMs: c.deadlineMs, sentAtMs: null, ackedAtMs: null, finishedAtMs: null, attempts: 0,
        reasonCode: null, message: null, devices: null, details: c.details ?? null,
      }));
      let wired: Set<CommandRecord>;
      try {
        // a singleton loop's commands are fenced: a deposed leader's are refused (FencedError)
        wired = await store(recs, opts.after ?? null, opts.beforeSend ?? null);
      } catch (err) {
        if (err instanceof FencedError) d.log.error({ err, commands: recs.length }, 'commands refused: this replica no longer leads');
        if (!(err instanceof CommandsRejectedError)) throw err;
        throw new HcpError('invalid_argument', err.message, 'db_rejected', { sqlstate: err.sqlstate, commands: err.commandIds });
      }
      for (const r of recs) {
        d.metrics.commandTransitions.inc({ type: r.payload.type, state: 'pending' });
        d.audit.write({ actor: r.actor, action: `command.submitted`, subject: r.id, details: { site: r.siteId, ...r.payload }, timeMs: now });
        say(r);
      }
      const sentAt = Date.now();
      for (const r of recs) if (wired.has(r)) transition(r, 'sent', sentAt);
      const elsewhere = new Map<string, string[]>();
      for (const r of recs) {
        if (hasStream(r.siteId)) continue;
        const l = elsewhere.get(r.siteId) ?? [];
        l.push(r.id);
        elsewhere.set(r.siteId, l);
      }
      publish('new', 's', [...elsewhere]);
      return recs;
    },

    /**
     * An agent's stream is up: everything not final for its site goes down it, oldest first —
     * what this replica holds at once, then (several replicas) what the table holds.
     */
    siteConnected(siteId: string): void {
      const now = Date.now();
      const mine = [...live.values()].filter((r) => r.siteId === siteId).sort((a, b) => a.createdAtMs - b.createdAtMs);
      if (!shared) {
        for (const r of mine) {
          if (r.state !== 'pending') transition(r, 'pending', now);
          deliver(r, now);
        }
        return;
      }
      for (const r of mine) if (r.state !== 'pending') transition(r, 'pending', now);
      pickUpLogged([siteId], false);
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

    /**
     * Several control planes: commands another replica made (the leader's reconciler, asked by
     * this replica), read from the table and held here, so waitFinal and get work for them.
     */
    async follow(ids: string[]): Promise<CommandRecord[]> {
      const missing = ids.filter((id) => !live.has(id) && !finished.has(id));
      for (let i = 0; i < missing.length; i += 1000) {
        for (const row of await getCommands<CommandRecord>(d.db, missing.slice(i, i + 1000))) {
          if (live.has(row.id) || finished.has(row.id)) continue;
          if (isFinal(row.state)) {
            finished.set(row.id, row);
            setTimeout(() => finished.delete(row.id), keepFinishedMs).unref();
          } else live.set(row.id, row);
        }
      }
      return ids.map((id) => live.get(id) ?? finished.get(id)).filter((r): r is CommandRecord => !!r);
    },

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

    /**
     * The submits gathered so far go into their statement at once, rather than at the end of
     * the tick: a caller that knows every submit it started is in (reconcileNow, after poking
     * its sites) does not wait behind the I/O callbacks queued before the tick's end.
     */
    storeNow(): void {
      for (const [fence, mine] of [...storing]) startStore(fence, mine);
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      for (const off of unsubscribe) off();
      clearInterval(expiryTimer);
      clearInterval(resyncTimer);
      // submits already taken are stored (or refused) before the bus goes
      while (storing.size || stores.size) await new Promise((r) => setImmediate(r)).then(() => Promise.all(stores));
      await expiring;
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
      d.events.on('site.connected', (e) => {
        ready.add(e.siteId);
        api.siteConnected(e.siteId);
      }),
      d.events.on('site.disconnected', (e) => {
        ready.delete(e.siteId);
        api.siteDisconnected(e.siteId);
      }),
      d.events.on('agent.ack', (e) => refused(e.siteId, 'commandAck', e.commandId, api.onAck(e.siteId, e.commandId))),
      d.events.on('agent.result', (e) => refused(e.siteId, 'commandResult', e.result.commandId, api.onResult(e.siteId, e.result))),
    ]
    : [];

  // The other replicas: new commands for streams here are picked up; transitions they wrote are
  // read back for the records held here. After the listening connection (re)connects, and every
  // resyncMs, both are re-read from the table, so a notice lost while it was down costs a delay,
  // never a command.
  const onNotice = (n: Notice) => {
    if (closed) return;
    if (n.k === 'new' && Array.isArray(n.s)) {
      const sites = (n.s as Array<[string, string[]]>).map(([site]) => site).filter((s) => typeof s === 'string' && hasStream(s));
      if (sites.length) pickUpLogged(sites, false);
    } else if (n.k === 'changed' && Array.isArray(n.c)) {
      const ids = (n.c as Array<[string, string]>).filter(([id, st]) => {
        const r = live.get(id);
        return r !== undefined && r.state !== st;
      }).map(([id]) => id);
      if (ids.length) void refresh(ids).catch((err) => d.log.warn({ err }, 'could not read commands another replica moved'));
    }
  };
  const resync = () => {
    if (closed) return;
    pickUpLogged(d.streamSites?.() ?? [], false);
    const remote = [...live.values()].filter((r) => !hasStream(r.siteId)).map((r) => r.id);
    if (remote.length) void refresh(remote).catch((err) => d.log.warn({ err }, 'could not re-read commands of other replicas'));
  };
  const resyncTimer = setInterval(() => shared && resync(), d.resyncMs ?? 5000);
  resyncTimer.unref();
  if (shared) {
    unsubscribe.push(notifier.subscribe(onNotice), notifier.onListening(resync));
  }
  return api;
}

export type CommandBus = Awaited<ReturnType<typeof createCommandBus>>;
