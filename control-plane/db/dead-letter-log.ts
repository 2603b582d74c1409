// What becomes of a dead letter: it is counted, and logged once per writer and SQLSTATE per
// interval with what identifies the row and the database's message — never the row itself, whose
// bad field may be megabytes of text, and never a line per row, which a device sending the same
// bad value every second would turn into a flood.
import type { Logger } from 'pino';
import type { DeadLetter } from './dead-letter.js';

export interface DeadLetterLogOptions {
  log: Logger;
  /** names the table or path in the log and the counter */
  writer: string;
  /** counts rejected rows; called once per report */
  count?: (n: number) => void;
  now?: () => number;
  everyMs?: number;
}

export type DeadLetterLog<T> = (letters: DeadLetter<T>[], identify: (row: T) => Record<string, unknown>) => void;

export function createDeadLetterLog<T>(o: DeadLetterLogOptions): DeadLetterLog<T> {
  const now = o.now ?? Date.now;
  const everyMs = o.everyMs ?? 10_000;
  const last = new Map<string, { at: number; suppressed: number }>();
  return (letters, identify) => {
    if (letters.length === 0) return;
    o.count?.(letters.length);
    const t = now();
    const byCode = new Map<string, DeadLetter<T>[]>();
    for (const l of letters) {
      const g = byCode.get(l.code);
      if (g) g.push(l);
      else byCode.set(l.code, [l]);
    }
    for (const [code, group] of byCode) {
      const seen = last.get(code);
      if (seen && seen.at + everyMs > t) {
        seen.suppressed += group.length;
        continue;
      }
      const l = group[0]!;
      o.log.error(
        {
          writer: o.writer, reason: 'db_rejected', code, dbMessage: l.message, ...identify(l.row),
          rejected: group.length, unresolved: group.filter((g) => g.unresolved).length, suppressedSinceLast: seen?.suppressed ?? 0,
        },
        'rows rejected by the database; the rest of the batch was written',
      );
      last.set(code, { at: t, suppressed: 0 });
    }
  };
}
