// Persistence of commands. Inserts and state updates are batched into single statements (the
// rows as one JSON text, or one array per column), so a fleet-wide curtail of a thousand sites
// is one round trip; the reads go through Drizzle. The record type is the stored shape, generic in its payload so db/
// imports no domain module: control-plane/commands/model.ts CommandRecord is one.
//
// Several control planes (docs/reliability.md): commands made by a singleton loop are inserted
// under its fence (ha/fence.ts), so a deposed leader's are refused; state updates are
// conditional (a final state is never overwritten, nor a later attempt by an earlier one),
// since the replica holding a site's stream and the leader's expiry can both write one command.
import { and, asc, desc, eq, inArray, type SQL } from 'drizzle-orm';
import type { Db } from './client.js';
import { classifyDbError, dbMessage, sqlState } from './db-error.js';
import { writeWithDeadLetters, type DeadLetter } from './dead-letter.js';
import { commands } from './schema.js';
import { checkFence, fenceRefused, type Fence } from '../ha/fence.js';

/** a command as stored (control-plane/commands/model.ts CommandRecord fits) */
export interface StoredCommand {
  id: string;
  siteId: string;
  payload: { type: string };
  state: string;
  actor: string;
  workloadId: string | null;
  createdAtMs: number;
  deadlineMs: number;
  sentAtMs: number | null;
  ackedAtMs: number | null;
  finishedAtMs: number | null;
  attempts: number;
  reasonCode: string | null;
  message: string | null;
  devices: unknown[] | null;
  details: Record<string, unknown> | null;
}

/** the database refused new commands for their content (SQLSTATE class 21, 22, 23…) */
export class CommandsRejectedError extends Error {
  constructor(
    override readonly cause: unknown,
    readonly sqlstate: string | null,
    readonly commandIds: string[],
  ) {
    super(`the database refused the command: ${dbMessage(cause)}`);
    this.name = 'CommandsRejectedError';
  }
}

const iso = (v: number | null) => (v === null ? null : new Date(v).toISOString());
const json = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;

function toRecord<R extends StoredCommand>(r: typeof commands.$inferSelect): R {
  return {
    id: r.id,
    siteId: r.siteId,
    payload: json(r.payload),
    state: r.state,
    actor: r.actor,
    workloadId: r.workloadId,
    createdAtMs: r.createdAt.getTime(),
    deadlineMs: r.deadline.getTime(),
    sentAtMs: r.sentAt?.getTime() ?? null,
    ackedAtMs: r.ackedAt?.getTime() ?? null,
    finishedAtMs: r.finishedAt?.getTime() ?? null,
    attempts: r.attempts,
    reasonCode: r.reasonCode,
    message: r.message,
    devices: json<unknown[] | null>(r.devices) ?? null,
    details: json<Record<string, unknown> | null>(r.details) ?? null,
  } as R;
}

/**
 * Stores new commands, all or none: the caller sends only what is stored, and waits for this, so
 * a refused command fails its own submit (CommandsRejectedError; the bus answers invalid_argument,
 * reason db_rejected) and nothing else.
 */
export async function insertCommands(db: Pick<Db, 'query'>, recs: StoredCommand[], fence: Fence | null = null): Promise<void> {
  if (recs.length === 0) return;
  let current: string | null;
  try {
    current = await insertStatement(db, recs, fence);
  } catch (err) {
    if (classifyDbError(err) !== 'content') throw err;
    throw new CommandsRejectedError(err, sqlState(err), recs.map((r) => r.id));
  }
  if (fence && current !== fence.token) throw fenceRefused(fence, current);
}

// One statement, one round trip: a fleet-wide curtail's thousand commands are the critical path
// of its every send. The rows go as one JSON text (JSON.stringify is native; binding ten arrays
// had postgres.js escape every element in JavaScript: 7 ms of CPU per thousand, against 2.5).
// Under a fence the lease row is locked FOR SHARE in the same statement and the rows are
// inserted only while it carries the fence's token: a takeover (an UPDATE of that row) waits for
// this commit, or this waits for the takeover, reads the new token and inserts nothing.
// Returns the token the lease carries (null without a fence).
async function insertStatement(db: Pick<Db, 'query'>, recs: StoredCommand[], fence: Fence | null): Promise<string | null> {
  const rows = JSON.stringify(recs.map((r) => ({
    id: r.id, s: r.siteId, t: r.payload.type, p: r.payload, st: r.state, a: r.actor, w: r.workloadId, c: r.createdAtMs, d: r.deadlineMs, dt: r.details,
  })));
  const insert = `INSERT INTO commands (id, site_id, type, payload, state, actor, workload_id, created_at, deadline, details)
     SELECT r.id, r.s, r.t, r.p, r.st, r.a, r.w, to_timestamp(r.c / 1000.0), to_timestamp(r.d / 1000.0), r.dt
     FROM json_to_recordset($1::text::json) AS r(id text, s text, t text, p jsonb, st text, a text, w text, c float8, d float8, dt jsonb)`;
  if (!fence) {
    await db.query(insert, [rows], { prepare: true });
    return null;
  }
  const [row] = await db.query<{ token: string | null }>(
    `WITH lease AS (SELECT token FROM leases WHERE name = $2 FOR SHARE),
     ins AS (${insert} WHERE (SELECT token FROM lease) = $3::bigint RETURNING 1)
     SELECT (SELECT token::text FROM lease) AS token, (SELECT count(*) FROM ins) AS n`,
    [rows, fence.name, fence.token],
    { prepare: true },
  );
  return row?.token ?? null;
}

/**
 * Writes the commands' current states in one statement. Returns the records the database refused
 * (dead-letter.ts), the others written; throws WriteInterruptedError on a database fault.
 */
export async function updateCommands<R extends StoredCommand>(db: Pick<Db, 'query'>, recs: R[]): Promise<DeadLetter<R>[]> {
  return writeWithDeadLetters(recs, (rows) => updateCommandStates(db, rows));
}

/**
 * One UPDATE … FROM json_to_recordset for any number of commands; the caller dead-letters (batch-writer.ts).
 * Conditional: a row already final keeps its state, and a row sent more often than the record
 * says (another replica delivered it since) is not set back. Returns the ids it wrote.
 */
export async function updateCommandStates(db: Pick<Db, 'query'>, recs: StoredCommand[]): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `UPDATE commands SET state = r.st, sent_at = to_timestamp(r.sa / 1000.0), acked_at = to_timestamp(r.aa / 1000.0),
       finished_at = to_timestamp(r.fa / 1000.0), attempts = r.at, reason_code = r.rc, message = r.msg, devices = r.dv
     FROM json_to_recordset($1::text::json) AS r(id text, st text, sa float8, aa float8, fa float8, at int4, rc text, msg text, dv jsonb)
     WHERE commands.id = r.id AND commands.state NOT IN ('succeeded', 'failed', 'expired') AND commands.attempts <= r.at
     RETURNING commands.id`,
    [JSON.stringify(recs.map((r) => ({ id: r.id, st: r.state, sa: r.sentAtMs, aa: r.ackedAtMs, fa: r.finishedAtMs, at: r.attempts, rc: r.reasonCode, msg: r.message, dv: r.devices })))],
    { prepare: true },
  );
  return rows.map((r) => r.id);
}

const LIVE_STATES = ['pending', 'sent', 'acked'];

/** every command not final, oldest first: the bus resumes them at start */
export async function loadLiveCommands<R extends StoredCommand = StoredCommand>(db: Pick<Db, 'orm'>): Promise<R[]> {
  const rows = await db.orm.select().from(commands).where(inArray(commands.state, LIVE_STATES)).orderBy(asc(commands.createdAt), asc(commands.id));
  return rows.map((r) => toRecord<R>(r));
}

/** the commands with these ids, as stored */
export async function getCommands<R extends StoredCommand = StoredCommand>(db: Pick<Db, 'orm'>, ids: readonly string[]): Promise<R[]> {
  if (ids.length === 0) return [];
  const rows = await db.orm.select().from(commands).where(inArray(commands.id, [...ids]));
  return rows.map((r) => toRecord<R>(r));
}

/** the commands not final of these sites, oldest first (a stream that opened here delivers them) */
export async function liveCommandsOf<R extends StoredCommand = StoredCommand>(db: Pick<Db, 'orm'>, siteIds: readonly string[]): Promise<R[]> {
  if (siteIds.length === 0) return [];
  const rows = await db.orm.select().from(commands)
    .where(and(inArray(commands.state, LIVE_STATES), inArray(commands.siteId, [...siteIds])))
    .orderBy(asc(commands.createdAt), asc(commands.id));
  return rows.map((r) => toRecord<R>(r));
}

/**
 * The leader's expiry: every command not final whose deadline passed (database time), or only
 * those of ids, becomes expired, under the fence. Returns the ids it expired.
 */
export async function expireCommands(db: Pick<Db, 'transaction'>, fence: Fence | null, ids: readonly string[] | null): Promise<Array<{ id: string; finishedAtMs: number }>> {
  return db.transaction(async (tx) => {
    await checkFence(tx, fence);
    const rows = await tx.query<{ id: string; fa: string | number }>(
      `UPDATE commands SET state = 'expired', finished_at = now(), reason_code = 'expired',
         message = 'no result before the deadline (' || to_char(deadline AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') || ')'
       WHERE state IN ('pending', 'sent', 'acked') AND ${ids ? 'id = ANY($1::text[])' : 'deadline <= now()'}
       RETURNING id, extract(epoch FROM finished_at) * 1000 AS fa`,
      ids ? [[...ids]] : [],
    );
    return rows.map((r) => ({ id: r.id, finishedAtMs: Math.round(Number(r.fa)) }));
  });
}

export async function getCommand<R extends StoredCommand = StoredCommand>(db: Pick<Db, 'orm'>, id: string): Promise<R | null> {
  const [r] = await db.orm.select().from(commands).where(eq(commands.id, id));
  return r ? toRecord<R>(r) : null;
}

export async function listCommands<R extends StoredCommand = StoredCommand>(
  db: Pick<Db, 'orm'>,
  f: { site?: string; state?: string; type?: string; workloadId?: string; limit: number },
): Promise<R[]> {
  const where: SQL[] = [];
  if (f.site !== undefined) where.push(eq(commands.siteId, f.site));
  if (f.state !== undefined) where.push(eq(commands.state, f.state));
  if (f.type !== undefined) where.push(eq(commands.type, f.type));
  if (f.workloadId !== undefined) where.push(eq(commands.workloadId, f.workloadId));
  const rows = await db.orm
    .select()
    .from(commands)
    .where(and(...where))
    .orderBy(desc(commands.createdAt), desc(commands.id))
    .limit(f.limit);
  return rows.map((r) => toRecord<R>(r));
}

export { iso as isoOrNull };
