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

export function createHelloWriter(db: Pick<Db, 'query'>, opts: { maxHellos?: number; maxDevices?: number } = {}): HelloWriter {
  return createCoalescer<HelloRow, void>({
    maxItems: opts.maxHellos ?? 2000,
    // a statement's arrays hold at most this many devices (a Hello may announce 20,000)
    weight: (h) => 1 + h.devices.length,
    maxWeight: opts.maxDevices ?? 50_000,
    async run(hellos) {
      const out: (void | Error)[] = hellos.map(() => undefined);
      const at = new Map(hellos.map((h, i) => [h, i]));
      try {
        for (const d of await writeWithDeadLetters(hellos, (part) => saveHellos(db, part))) {
          out[at.get(d.row)!] = new HelloRefusedError(d.code, d.message);
        }
      } catch (err) {
        if (!(err instanceof WriteInterruptedError)) throw err;
        // a fault part-way: what was written is written; the rest fail with the fault
        for (const h of err.unwritten as HelloRow[]) out[at.get(h)!] = err;
        for (const d of err.rejected as { row: HelloRow; code: string; message: string }[]) out[at.get(d.row)!] = new HelloRefusedError(d.code, d.message);
      }
      return out;
    },
  });
}
