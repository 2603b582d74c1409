// Reading the audit log (written by audit-writer.ts): newest first, filtered, a page at a time.
// The page after a cursor is keyset on (time, id), read from the row the cursor names, so an
// entry written between two calls shifts nothing and no entry is seen twice.
import { and, desc, eq, gte, lte, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from './client.js';
import { auditLog } from './schema.js';

export interface AuditFilter {
  /** entries about the site: its subject, or details.site */
  site?: string;
  actor?: string;
  /** an action ('claim.created'), or a family of them ending with '.' ('claim.') */
  action?: string;
  fromMs?: number;
  toMs?: number;
  /** the id of the last entry of the page before */
  afterId?: number;
  limit: number;
}

export interface AuditRow {
  id: number;
  timeMs: number;
  actor: string;
  action: string;
  subject: string | null;
  details: Record<string, unknown>;
}

/** up to limit + 1 entries, newest first (the extra one says another page follows) */
export async function listAudit(db: Pick<Db, 'orm'>, f: AuditFilter): Promise<AuditRow[]> {
  const where: SQL[] = [];
  if (f.site !== undefined) where.push(or(eq(auditLog.subject, f.site), sql`${auditLog.details}->>'site' = ${f.site}`)!);
  if (f.actor !== undefined) where.push(eq(auditLog.actor, f.actor));
  if (f.action !== undefined) {
    where.push(f.action.endsWith('.') ? sql`starts_with(${auditLog.action}, ${f.action})` : eq(auditLog.action, f.action));
  }
  if (f.fromMs !== undefined) where.push(gte(auditLog.time, new Date(f.fromMs)));
  if (f.toMs !== undefined) where.push(lte(auditLog.time, new Date(f.toMs)));
  if (f.afterId !== undefined) {
    where.push(sql`(${auditLog.time}, ${auditLog.id}) < (SELECT a.time, a.id FROM audit_log a WHERE a.id = ${f.afterId})`);
  }
  const rows = await db.orm
    .select()
    .from(auditLog)
    .where(and(...where))
    .orderBy(desc(auditLog.time), desc(auditLog.id))
    .limit(f.limit + 1);
  return rows.map((r) => ({
    id: r.id,
    timeMs: new Date(r.time as unknown as string | Date).getTime(),
    actor: r.actor,
    action: r.action,
    subject: r.subject,
    details: (r.details ?? {}) as Record<string, unknown>,
  }));
}
