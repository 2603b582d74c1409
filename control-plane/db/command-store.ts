// Persistence of commands. Inserts and state updates are batched into single statements that
// bind one array per column, so a fleet-wide curtail of a thousand sites is one round trip.
import type { CommandPayload, CommandRecord, CommandState } from '../commands/model.js';
import { HcpError } from '../errors.js';
import type { Db } from './client.js';
import { classifyDbError, dbMessage, sqlState } from './db-error.js';
import { writeWithDeadLetters, type DeadLetter } from './dead-letter.js';

const ms = (v: unknown) => (v === null || v === undefined ? null : new Date(v as string).getTime());
const iso = (v: number | null) => (v === null ? null : new Date(v).toISOString());

function toRecord(r: Record<string, unknown>): CommandRecord {
  const payload = (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as CommandPayload;
  const devices = (typeof r.devices === 'string' ? JSON.parse(r.devices) : r.devices) as CommandRecord['devices'];
  return {
    id: r.id as string,
    siteId: r.site_id as string,
    payload,
    state: r.state as CommandState,
    actor: r.actor as string,
    workloadId: (r.workload_id as string | null) ?? null,
    createdAtMs: ms(r.created_at)!,
    deadlineMs: ms(r.deadline)!,
    sentAtMs: ms(r.sent_at),
    ackedAtMs: ms(r.acked_at),
    finishedAtMs: ms(r.finished_at),
    attempts: Number(r.attempts),
    reasonCode: (r.reason_code as string | null) ?? null,
    message: (r.message as string | null) ?? null,
    devices: devices ?? null,
    details: ((typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as Record<string, unknown> | null) ?? null,
  };
}

/**
 * Stores new commands, all or none: the caller sends only what is stored, and waits for this, so
 * a refused command fails its own submit (invalid_argument, reason db_rejected) and nothing else.
 */
export async function insertCommands(db: Pick<Db, 'query'>, recs: CommandRecord[]): Promise<void> {
  if (recs.length === 0) return;
  try {
    await insertStatement(db, recs);
  } catch (err) {
    if (classifyDbError(err) !== 'content') throw err;
    throw new HcpError('invalid_argument', `the database refused the command: ${dbMessage(err)}`, 'db_rejected', {
      sqlstate: sqlState(err), commands: recs.map((r) => r.id),
    });
  }
}

async function insertStatement(db: Pick<Db, 'query'>, recs: CommandRecord[]): Promise<void> {
  await db.query(
    `INSERT INTO commands (id, site_id, type, payload, state, actor, workload_id, created_at, deadline, details)
     SELECT id, s, t, p::jsonb, st, a, w, to_timestamp(c / 1000.0), to_timestamp(d / 1000.0), dt::jsonb
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::text[])
       AS r(id, s, t, p, st, a, w, c, d, dt)`,
    [
      recs.map((r) => r.id), recs.map((r) => r.siteId), recs.map((r) => r.payload.type), recs.map((r) => JSON.stringify(r.payload)),
      recs.map((r) => r.state), recs.map((r) => r.actor), recs.map((r) => r.workloadId), recs.map((r) => r.createdAtMs), recs.map((r) => r.deadlineMs),
      recs.map((r) => (r.details ? JSON.stringify(r.details) : null)),
    ],
  );
}

/**
 * Writes the commands' current states in one statement. Returns the records the database refused
 * (dead-letter.ts), the others written; throws WriteInterruptedError on a database fault.
 */
export async function updateCommands(db: Pick<Db, 'query'>, recs: CommandRecord[]): Promise<DeadLetter<CommandRecord>[]> {
  return writeWithDeadLetters(recs, (rows) => updateCommandStates(db, rows));
}

/** one UPDATE … FROM unnest for any number of commands; the caller dead-letters (batch-writer.ts) */
export async function updateCommandStates(db: Pick<Db, 'query'>, recs: CommandRecord[]): Promise<void> {
  await db.query(
    `UPDATE commands SET state = r.st, sent_at = to_timestamp(r.sa / 1000.0), acked_at = to_timestamp(r.aa / 1000.0),
       finished_at = to_timestamp(r.fa / 1000.0), attempts = r.at, reason_code = r.rc, message = r.msg, devices = r.dv::jsonb
     FROM unnest($1::text[], $2::text[], $3::float8[], $4::float8[], $5::float8[], $6::int4[], $7::text[], $8::text[], $9::text[])
       AS r(id, st, sa, aa, fa, at, rc, msg, dv)
     WHERE commands.id = r.id`,
    [
      recs.map((r) => r.id), recs.map((r) => r.state), recs.map((r) => r.sentAtMs), recs.map((r) => r.ackedAtMs), recs.map((r) => r.finishedAtMs),
      recs.map((r) => r.attempts), recs.map((r) => r.reasonCode), recs.map((r) => r.message), recs.map((r) => (r.devices ? JSON.stringify(r.devices) : null)),
    ],
  );
}

export async function loadLiveCommands(db: Db): Promise<CommandRecord[]> {
  const rows = await db.query(`SELECT * FROM commands WHERE state IN ('pending', 'sent', 'acked') ORDER BY created_at, id`);
  return rows.map(toRecord);
}

export async function getCommand(db: Db, id: string): Promise<CommandRecord | null> {
  const [r] = await db.query(`SELECT * FROM commands WHERE id = $1`, [id]);
  return r ? toRecord(r) : null;
}

export async function listCommands(db: Db, f: { site?: string; state?: string; workloadId?: string; limit: number }): Promise<CommandRecord[]> {
  const rows = await db.query(
    `SELECT * FROM commands
     WHERE ($1::text IS NULL OR site_id = $1) AND ($2::text IS NULL OR state = $2) AND ($3::text IS NULL OR workload_id = $3)
     ORDER BY created_at DESC, id DESC LIMIT $4`,
    [f.site ?? null, f.state ?? null, f.workloadId ?? null, f.limit],
  );
  return rows.map(toRecord);
}

export { iso as isoOrNull };
