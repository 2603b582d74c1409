// One bad record never stops anyone else's writes: the telemetry writer, the audit writer and the
// command path on a real PostgreSQL and on PGlite — a row the database refuses is dead-lettered
// (logged, counted) and the rest land; a database fault keeps the rows until it is over.
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCommandBus, type CommandBus } from '../control-plane/commands/bus.js';
import { createAuditWriter, type AuditWriter } from '../control-plane/db/audit-writer.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { CommandsRejectedError, insertCommands, updateCommands } from '../control-plane/db/command-store.js';
import { classifyDbError, sqlState } from '../control-plane/db/db-error.js';
import { migrate } from '../control-plane/db/migrate.js';
import { createTelemetryWriter, type TelemetryBatchIn } from '../control-plane/db/telemetry-writer.js';
import type { AsicSample, GpuSample } from '../proto/gen/hcp/v1/telemetry.js';
import type { CommandRecord } from '../control-plane/commands/model.js';
import { createMetrics, type Metrics } from '../control-plane/metrics.js';
import { CommandOutcome } from '../proto/gen/hcp/v1/commands.js';
import { describePg } from './harness/pg.js';
import { asic, gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';

type Line = Record<string, unknown>;

function capture() {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { log, lines, deadLetterLines: (writer: string) => lines.filter((l) => l.writer === writer && l.reason === 'db_rejected') };
}

async function counter(c: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> }, labels: Record<string, string>): Promise<number> {
  const { values } = await c.get();
  return values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value ?? 0;
}

const count = async (db: Db, sql: string, params: unknown[] = []) => (await db.query<{ n: number }>(sql, params))[0]!.n;

let seqs = 0;
/** a whole batch for the telemetry writer, with a seq of its own */
const batchOf = (site: string, sentAtMs: number, gpus: GpuSample[], asics: AsicSample[]): TelemetryBatchIn =>
  ({ site, stream: 'dead-letter-test', seq: ++seqs, sentAtMs, gpus, asics, bytes: 50 + 100 * (gpus.length + asics.length) });
const ledgerRows = async (db: Db, seq: number) =>
  (await db.query<{ rows: number }>(`SELECT rows FROM telemetry_batches WHERE stream = 'dead-letter-test' AND seq = $1`, [seq]))[0]?.rows;

function command(id: string, over: Partial<CommandRecord> = {}): CommandRecord {
  const now = Date.now();
  return {
    id, siteId: 'texas-1', payload: { type: 'curtail', reason: 'test' }, state: 'pending', actor: 'test', workloadId: null,
    createdAtMs: now, deadlineMs: now + 60_000, sentAtMs: null, ackedAtMs: null, finishedAtMs: null, attempts: 0,
    reasonCode: null, message: null, devices: null, details: null, ...over,
  };
}

/** the tests both back ends must pass; `db` is read inside the tests */
function writerTests(db: () => Db) {
  it('writes 99 of 100 GPU rows when one has xid_errors 4e9 (a uint32 in an int4 column), and counts one db_rejected', async () => {
    const metrics = createMetrics();
    const { log, deadLetterLines } = capture();
    const writer = createTelemetryWriter({ db: db(), metrics, log, flushIntervalMs: 60_000, maxRows: 1_000_000 });
    const t = Date.now();
    const rows = Array.from({ length: 100 }, (_, i) => ({ ...gpu(`gpu-xid-${i}`, t, 90, 600), xidErrors: i === 42 ? 4e9 : 0 }));
    writer.offer(batchOf('texas-1', t, rows, []));
    await writer.flush();
    expect(await count(db(), `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id LIKE 'gpu-xid-%'`)).toBe(99);
    expect(await count(db(), `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id = 'gpu-xid-42'`)).toBe(0);
    expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(1);
    expect(await counter(metrics.dbRejectedRows, { writer: 'gpu_telemetry' })).toBe(1);
    expect(await counter(metrics.ingestSamples, { kind: 'gpu' })).toBe(99);
    // the log names the site, the device and the database's reason, and carries no row dump
    const [line, ...more] = deadLetterLines('gpu_telemetry');
    expect(more).toEqual([]);
    expect(line).toMatchObject({ site: 'texas-1', device: 'gpu-xid-42', code: '22003', rejected: 1 });
    expect(String(line!.dbMessage)).toMatch(/out of range for type integer/);
    expect(JSON.stringify(line)).not.toMatch(/utilizationPct|memoryUsedMib/);
    // the batch is ledgered with the rows it stored
    expect(await ledgerRows(db(), seqs)).toBe(99);

    // the bad row is not retried: the next batch lands and the count stays
    writer.offer(batchOf('texas-1', t, [gpu('gpu-xid-next', t, 10, 100)], []));
    await writer.flush();
    expect(await count(db(), `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id = 'gpu-xid-next'`)).toBe(1);
    expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(1);
    await writer.close();
  });

  it('writes the good ASIC rows around rows out of int4 and int8 range, logging one line per reason per interval', async () => {
    const metrics = createMetrics();
    const { log, deadLetterLines } = capture();
    const writer = createTelemetryWriter({ db: db(), metrics, log, flushIntervalMs: 60_000, maxRows: 1_000_000 });
    const t = Date.now();
    const rows = Array.from({ length: 50 }, (_, i) => asic(`asic-range-${i}`, t, 270, 3645));
    rows[7] = { ...rows[7]!, fanRpm: [4000, 4e9, 4000, 4000] };
    rows[33] = { ...rows[33]!, acceptedShares: 2 ** 64 };
    writer.offer(batchOf('texas-2', t, [], rows));
    await writer.flush();
    writer.offer(batchOf('texas-2', t + 1, [], [{ ...asic('asic-range-late', t + 1, 270, 3645), hardwareErrors: 1e20 }, asic('asic-range-ok', t + 1, 270, 3645)]));
    await writer.flush();
    expect(await count(db(), `SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id LIKE 'asic-range-%'`)).toBe(49);
    expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(3);
    expect(await counter(metrics.dbRejectedRows, { writer: 'asic_telemetry' })).toBe(3);
    // three rows, one reason (22003), within ten seconds: one line
    const lines = deadLetterLines('asic_telemetry');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ site: 'texas-2', code: '22003', rejected: 2 });
    await writer.close();
  });

  it('keeps a batch whole through an undefined table (42P01, transient) and writes it once the table is back', async () => {
    const metrics = createMetrics();
    const { log } = capture();
    const writer = createTelemetryWriter({ db: db(), metrics, log, flushIntervalMs: 50, maxRows: 1_000_000 });
    const t = Date.now();
    await db().exec('ALTER TABLE gpu_telemetry RENAME TO gpu_telemetry_away');
    try {
      writer.offer(batchOf('texas-1', t, Array.from({ length: 10 }, (_, i) => gpu(`gpu-away-${i}`, t, 90, 600)), [asic('asic-away-0', t, 270, 3645)]));
      await writer.flush();
      // one transaction per flush: the ASIC table was there, but the batch waits whole, unledgered
      expect(await count(db(), `SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id = 'asic-away-0'`)).toBe(0);
      expect(await ledgerRows(db(), seqs)).toBeUndefined();
      expect(await count(db(), `SELECT count(*)::int AS n FROM gpu_telemetry_away WHERE device_id LIKE 'gpu-away-%'`)).toBe(0);
      expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(0);
    } finally {
      await db().exec('ALTER TABLE gpu_telemetry_away RENAME TO gpu_telemetry');
    }
    await waitFor(async () => (await count(db(), `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id LIKE 'gpu-away-%'`)) === 10, {
      message: 'GPU rows written once the table is back',
    });
    expect(await count(db(), `SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id = 'asic-away-0'`)).toBe(1);
    expect(await ledgerRows(db(), seqs)).toBe(11);
    expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(0);
    await writer.close();
  });

  it('writes the other audit entries when one has a NUL in its details (invalid in jsonb), and keeps writing', async () => {
    const metrics = createMetrics();
    const { log, deadLetterLines } = capture();
    const audit = createAuditWriter({ db: db(), log, metrics, flushMs: 60_000 });
    for (let i = 0; i < 5; i++) {
      audit.write({ actor: 'test', action: 'audit.nul', subject: `e${i}`, details: { note: i === 2 ? 'bad\u0000byte' : 'fine' } });
    }
    await audit.flush();
    const subjects = await db().query<{ subject: string }>(`SELECT subject FROM audit_log WHERE action = 'audit.nul' ORDER BY subject`);
    expect(subjects.map((r) => r.subject)).toEqual(['e0', 'e1', 'e3', 'e4']);
    expect(await counter(metrics.dbRejectedRows, { writer: 'audit_log' })).toBe(1);
    expect(deadLetterLines('audit_log')[0]).toMatchObject({ action: 'audit.nul', subject: 'e2', code: '22P05' });
    audit.write({ actor: 'test', action: 'audit.nul', subject: 'later', details: {} });
    await audit.flush();
    expect(await count(db(), `SELECT count(*)::int AS n FROM audit_log WHERE subject = 'later'`)).toBe(1);
    await audit.close();
  });

  it('keeps audit entries through an undefined table and writes them once it is back', async () => {
    const { log } = capture();
    const audit = createAuditWriter({ db: db(), log, metrics: createMetrics(), flushMs: 50 });
    await db().exec('ALTER TABLE audit_log RENAME TO audit_log_away');
    try {
      audit.write({ actor: 'test', action: 'audit.away', subject: null, details: {} });
      await audit.flush();
      expect(await count(db(), `SELECT count(*)::int AS n FROM audit_log_away WHERE action = 'audit.away'`)).toBe(0);
    } finally {
      await db().exec('ALTER TABLE audit_log_away RENAME TO audit_log');
    }
    await waitFor(async () => (await count(db(), `SELECT count(*)::int AS n FROM audit_log WHERE action = 'audit.away'`)) === 1, {
      message: 'audit entry written once the table is back',
    });
    await audit.close();
  });

  // (the states go as one JSON text: a NUL is the JSON escape \u0000, which text refuses, 22P05)
  it('updates the other commands when one state has a NUL in its message (invalid in text)', async () => {
    const ids = ['upd-1', 'upd-2', 'upd-3'];
    await insertCommands(db(), ids.map((id) => command(id)));
    const now = Date.now();
    const dead = await updateCommands(db(), ids.map((id) => command(id, {
      state: 'failed', finishedAtMs: now, reasonCode: 'driver_error', message: id === 'upd-2' ? 'nul\u0000here' : `fine ${id}`,
    })));
    expect(dead.map((d) => [d.row.id, d.code])).toEqual([['upd-2', '22P05']]);
    const rows = await db().query<{ id: string; state: string }>(`SELECT id, state FROM commands WHERE id = ANY($1::text[]) ORDER BY id`, [ids]);
    expect(rows.map((r) => `${r.id}:${r.state}`)).toEqual(['upd-1:failed', 'upd-2:pending', 'upd-3:failed']);
  });

  it('refuses a new command the database refuses with a typed error, and stores none of its submit', async () => {
    // (the bus answers it as invalid_argument, reason db_rejected)
    const err = await insertCommands(db(), [command('ins-1'), command('ins-2', { payload: { type: 'curtail', reason: 'a\u0000b' } })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandsRejectedError);
    expect(err).toMatchObject({ sqlstate: '22P05' });
    expect(await count(db(), `SELECT count(*)::int AS n FROM commands WHERE id LIKE 'ins-%'`)).toBe(0);
  });
}

describePg('dead letters on PostgreSQL', (pg) => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: '' });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  writerTests(() => db);

  it('classifies what postgres.js really raises', async () => {
    const raised = (p: Promise<unknown>) => p.then(() => { throw new Error('expected a failure'); }, (e: unknown) => e);
    const content = [
      await raised(db.query('SELECT x FROM unnest($1::int4[]) x', [[4e9]])),
      await raised(db.query('SELECT x FROM unnest($1::text[]) x', [['a\u0000b']])),
      await raised(db.query('SELECT x::jsonb FROM unnest($1::text[]) x', [[JSON.stringify({ a: '\u0000' })]])),
      await raised(db.query(`INSERT INTO facilities (id, name, region) VALUES ('texas-1', 'dup', 'ercot')`)),
      // a jsonb nested past the parser's stack: 54001
      await raised(db.query('SELECT x::jsonb FROM unnest($1::text[]) x', [['['.repeat(100_000) + ']'.repeat(100_000)]])),
    ];
    expect(content.map(sqlState)).toEqual(['22003', '22021', '22P05', '23505', '54001']);
    expect(content.map(classifyDbError)).toEqual(['content', 'content', 'content', 'content', 'content']);
    const undefinedTable = await raised(db.query('SELECT * FROM no_such_table'));
    expect([sqlState(undefinedTable), classifyDbError(undefinedTable)]).toEqual(['42P01', 'transient']);
    const unreachable = await createDb({ url: 'postgres://hcp:hcp@127.0.0.1:1/none', dataDir: '' });
    try {
      const refused = await raised(unreachable.query('SELECT 1'));
      expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
      expect(classifyDbError(refused)).toBe('transient');
    } finally {
      await unreachable.close();
    }
  });

  it('keeps telemetry while the database is unreachable and writes it once it is back', async () => {
    const proxy = await tcpProxy(new URL(pg.url));
    const url = new URL(pg.url);
    url.host = `127.0.0.1:${proxy.port}`;
    const far = await createDb({ url: url.toString(), dataDir: '', maxConnections: 2 });
    const metrics = createMetrics();
    const writer = createTelemetryWriter({ db: far, metrics, log: capture().log, flushIntervalMs: 50, maxRows: 1_000_000 });
    try {
      await proxy.stop();
      const t = Date.now();
      writer.offer(batchOf('texas-1', t, Array.from({ length: 20 }, (_, i) => gpu(`gpu-far-${i}`, t, 90, 600)), []));
      await writer.flush();
      expect(await count(db, `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id LIKE 'gpu-far-%'`)).toBe(0);
      expect(await counter(metrics.ingestBuffered, {})).toBe(20);
      await proxy.start();
      await waitFor(async () => (await count(db, `SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id LIKE 'gpu-far-%'`)) === 20, {
        message: 'rows written once the database is reachable', timeoutMs: 15_000,
      });
      expect(await counter(metrics.ingestRejected, { reason: 'db_rejected' })).toBe(0);
    } finally {
      await writer.close();
      await far.close();
      await proxy.stop();
    }
  });

  describe('command bus', () => {
    let bus: CommandBus;
    let audit: AuditWriter;
    let metrics: Metrics;
    const state = async (id: string) => (await db.query<{ state: string; message: string | null }>(`SELECT state, message FROM commands WHERE id = $1`, [id]))[0];
    const apply = (id: string, message: string) =>
      bus.onResult('texas-1', { commandId: id, outcome: CommandOutcome.COMMAND_OUTCOME_APPLIED, reasonCode: 'ok', message, devices: [], appliedAtMs: Date.now() });
    const curtail = (id: string) => ({ id, siteId: 'texas-1', payload: { type: 'curtail' as const, reason: 'test' }, actor: 'test', deadlineMs: Date.now() + 60_000 });

    beforeAll(async () => {
      metrics = createMetrics();
      const { log } = capture();
      audit = createAuditWriter({ db, log, metrics });
      bus = await createCommandBus({ db, audit, metrics, log, send: () => true, flushMs: 20 });
    });
    afterAll(async () => {
      await bus?.close();
      await audit?.close();
    });

    it('stores a result with a NUL in its message without the NUL', async () => {
      await bus.submit([curtail('bus-nul')]);
      expect(apply('bus-nul', 'fan\u0000 stalled')).toBeNull();
      await waitFor(async () => (await state('bus-nul'))?.state === 'succeeded', { message: 'bus-nul stored as succeeded' });
      expect((await state('bus-nul'))!.message).toBe('fan stalled');
    });

    it('stores the submits of one tick together, and when the database refuses one command only its own submit fails', async () => {
      // a bus of its own on a handle that counts the statements storing new commands
      let inserts = 0;
      const counted: Db = { ...db, query: (text, params) => ((inserts += /INSERT INTO commands/.test(text) ? 1 : 0), db.query(text, params)) };
      const { log } = capture();
      const own = await createCommandBus({ db: counted, audit, metrics, log, send: () => true, flushMs: 20 });
      try {
        const ids = Array.from({ length: 50 }, (_, i) => `tick-${i}`);
        await Promise.all(ids.map((id) => own.submit([curtail(id)])));
        expect(await count(db, `SELECT count(*)::int AS n FROM commands WHERE id LIKE 'tick-%'`)).toBe(50);
        expect(inserts).toBe(1);
      } finally {
        await own.close();
      }

      const results = await Promise.allSettled([
        bus.submit([curtail('tick-ok-1')]),
        bus.submit([{ ...curtail('tick-bad'), payload: { type: 'curtail' as const, reason: 'a\u0000b' } }]),
        bus.submit([curtail('tick-ok-2')]),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ reason: 'db_rejected' });
      expect(await count(db, `SELECT count(*)::int AS n FROM commands WHERE id IN ('tick-ok-1', 'tick-ok-2', 'tick-bad')`)).toBe(2);
    });

    it('puts every command of one statement on the wire before any submit goes on, then says pending and sent in order', async () => {
      const seen: string[] = [];
      const own = await createCommandBus({
        db, audit, metrics, log: capture().log, flushMs: 20,
        // a site without a stream: not sent, left pending for when it connects
        send: (site, m) => (m.body?.$case === 'command' && seen.push(`wire:${m.body.value.commandId}`), site !== 'texas-2'),
      });
      const off = own.watch((r) => void seen.push(`${r.state}:${r.id}`));
      try {
        const recs = await Promise.all([
          own.submit([curtail('wire-1')]),
          own.submit([curtail('wire-2')]),
          own.submit([{ ...curtail('wire-3'), siteId: 'texas-2' }]),
        ]);
        expect(seen.slice(0, 3)).toEqual(['wire:wire-1', 'wire:wire-2', 'wire:wire-3']);
        expect(seen.slice(3)).toEqual(['pending:wire-1', 'sent:wire-1', 'pending:wire-2', 'sent:wire-2', 'pending:wire-3']);
        expect(recs.map(([r]) => r!.state)).toEqual(['sent', 'sent', 'pending']);
      } finally {
        off();
        await own.close();
      }
    });

    it('calls a submit\'s beforeSend once its commands are stored and right before they go out; not when what it waits for failed', async () => {
      // the reconciler sends a site's desired state from here (claims/reconciler.ts pushDue): the
      // agent must hold it before the commands that carry it out
      const order: string[] = [];
      const tracked: Db = {
        ...db,
        query: async (text, params, opts) => {
          const rows = await db.query(text, params, opts);
          if (/INSERT INTO commands/.test(text)) order.push('stored');
          return rows as never;
        },
      };
      const own = await createCommandBus({
        db: tracked, audit, metrics, log: capture().log, flushMs: 20,
        send: (_site, m) => (m.body?.$case === 'command' && order.push(`wire:${m.body.value.commandId}`), true),
      });
      const failed = Promise.reject(new Error('the claims write failed'));
      failed.catch(() => {});
      try {
        const results = await Promise.allSettled([
          own.submit([curtail('before-1')], { beforeSend: () => order.push('before:before-1') }),
          own.submit([curtail('before-2')], { after: failed, beforeSend: () => order.push('before:before-2') }),
        ]);
        expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected']);
        expect(order).toEqual(['stored', 'before:before-1', 'wire:before-1']);
        expect(await count(db, `SELECT count(*)::int AS n FROM commands WHERE id IN ('before-1', 'before-2')`)).toBe(1);
      } finally {
        await own.close();
      }
    });

    it('writes the other commands\' states when the database refuses one, and later commands still complete', async () => {
      // a state this database refuses for its content, as it would a NUL that got past the checks
      await db.exec(`ALTER TABLE commands ADD CONSTRAINT test_poison CHECK (message IS NULL OR message NOT LIKE '%poison%')`);
      try {
        await bus.submit(['bus-1', 'bus-2', 'bus-3'].map(curtail));
        apply('bus-1', 'fine');
        apply('bus-2', 'poison');
        apply('bus-3', 'fine too');
        await waitFor(async () => (await state('bus-1'))?.state === 'succeeded' && (await state('bus-3'))?.state === 'succeeded', {
          message: 'bus-1 and bus-3 stored as succeeded',
        });
        await waitFor(async () => (await counter(metrics.dbRejectedRows, { writer: 'commands' })) === 1, { message: 'one command state dead-lettered' });
        expect(['pending', 'sent']).toContain((await state('bus-2'))!.state);
        // in memory the command is final: its waiters heard of it
        expect(bus.get('bus-2')?.state).toBe('succeeded');

        await bus.submit([curtail('bus-4')]);
        apply('bus-4', 'after');
        await waitFor(async () => (await state('bus-4'))?.state === 'succeeded', { message: 'bus-4 stored as succeeded' });
        // every final state reached the audit log, the refused one too
        await audit.flush();
        expect(await count(db, `SELECT count(*)::int AS n FROM audit_log WHERE action = 'command.succeeded' AND subject LIKE 'bus-%'`)).toBe(5);
        expect(await counter(metrics.dbRejectedRows, { writer: 'commands' })).toBe(1);
      } finally {
        await db.exec('ALTER TABLE commands DROP CONSTRAINT test_poison');
      }
    });
  });
});

describe('dead letters on PGlite', () => {
  let db: Db;
  beforeAll(async () => {
    db = await createDb({ dataDir: ':memory:' });
    await migrate(db);
  });
  afterAll(async () => {
    await db?.close();
  });

  writerTests(() => db);
});

/** a TCP proxy to PostgreSQL that can be stopped (connections cut, port closed) and started again */
async function tcpProxy(target: URL) {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  let port = 0;
  const start = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(Number(target.port || 5432), target.hostname);
        const cut = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        sockets.add(client).add(upstream);
        client.pipe(upstream).pipe(client);
        for (const x of [client, upstream]) x.on('error', cut).on('close', cut);
      });
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as AddressInfo).port;
        server = s;
        resolve();
      });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const x of sockets) x.destroy();
      sockets.clear();
      if (!server) return resolve();
      server.close(() => resolve());
      server = null;
    });
  await start();
  return { get port() { return port; }, start, stop };
}
