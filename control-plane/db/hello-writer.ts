// Hellos' rows, batched: the gateway awaits each Hello's write before its HelloAck (the agent is
// told its devices are registered only once they are), but Hellos that arrive together share
// one statement (coalescer.ts, registry-store.ts saveHellos). A Hello the database refuses for
// its content fails alone (dead-letter.ts finds it); the others in its batch are written.
import { createCoalescer } from './coalescer.js';
import { WriteInterruptedError, writeWithDeadLetters } from './dead-letter.js';
import type { Db } from './client.js';
import { saveHellos, type HelloRow } from './registry-store.js';

/** the database refused this Hello's rows for their content: sending it again will not help */
export class HelloRefusedError extends Error {
  readonly code = 'hello_refused';
  constructor(
    readonly sqlState: string,
    message: string,
  ) {
    super(message);
    this.name = 'HelloRefusedError';
  }
}

export type HelloWriter = (h: HelloRow) => Promise<void>;

export function createHelloWriter(db: Pick<Db, 'query'>, opts: { maxHellos?: number; maxDevices?: number; timeoutMs?: number } = {}): HelloWriter {
  return createCoalescer<HelloRow, void>({
    maxItems: opts.maxHellos ?? 2000,
    // a statement's arrays hold at most this many devices (a Hello may announce 20,000)
    weight: (h) => 1 + h.devices.length,
    maxWeight: opts.maxDevices ?? 50_000,
    timeoutMs: opts.timeoutMs ?? 15_000,
    async run(all) {
      // One Hello per site: a site that said Hello twice in a batch (it reconnected at once)
      // keeps its last; the earlier one, whose stream is gone, shares its outcome. Written alone
      // after a split, the earlier one's devices would overwrite the later's.
      const last = new Map<string, HelloRow>();
      for (const h of all) last.set(h.site.id, h);
      const hellos = [...last.values()];
      const out = new Map<HelloRow, void | Error>(hellos.map((h) => [h, undefined]));
      const refused = (d: { row: HelloRow; code: string; message: string; unresolved: boolean }) =>
        out.set(d.row, d.unresolved
          ? new Error('not written: the search for the Hellos the database refused ran out of statements; retry')
          : new HelloRefusedError(d.code, d.message));
      try {
        for (const d of await writeWithDeadLetters(hellos, (part) => saveHellos(db, part))) refused(d);
      } catch (err) {
        if (!(err instanceof WriteInterruptedError)) throw err;
        // a fault part-way: what was written is written; the rest fail with the fault
        for (const h of err.unwritten as HelloRow[]) out.set(h, err);
        for (const d of err.rejected as { row: HelloRow; code: string; message: string; unresolved: boolean }[]) refused(d);
      }
      return all.map((h) => out.get(last.get(h.site.id)!));
    },
  });
}
