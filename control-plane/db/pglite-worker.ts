// The embedded database's own thread. PGlite runs PostgreSQL compiled to WebAssembly, and a
// statement runs synchronously inside the WASM call: on the control plane's thread, a 5,000-row
// telemetry flush stalled every REST answer, gRPC message and MQTT ack for its whole duration
// (issue 13: REST p99 783 ms at 10k samples/s, bench:schedule submit p99 18.6 s). Here it stalls
// only this thread; client.ts (createPgliteDb) talks to it by messages.
//
// Protocol (client.ts is the only sender): each request carries an `id` answered exactly once.
// - query {text, params, mode, tx}: `mode` 'object' | 'array' is PGlite's rowMode; `drizzle`
//   keeps timestamps, dates and intervals as the server's text, as drizzle-orm/pglite does, so
//   Drizzle's column mappers see what they expect.
// - exec {text, tx}
// - begin: opens a transaction (PGlite's own, which holds its mutex: statements sent without
//   `tx` wait until it ends) and answers with its number; end {tx, commit} ends it.
// - close.
// Errors go back as plain fields (structured clone keeps neither the class nor `code`), and
// client.ts rebuilds them with the shape db-error.ts reads: name, message, code, severity.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, types, type Transaction } from '@electric-sql/pglite';

export type WorkerRequest =
  | { id: number; op: 'query'; text: string; params: unknown[]; mode: 'object' | 'array'; drizzle: boolean; tx: number }
  | { id: number; op: 'exec'; text: string; tx: number }
  | { id: number; op: 'begin' }
  | { id: number; op: 'end'; tx: number; commit: boolean }
  | { id: number; op: 'close' };

export type WorkerReply =
  | { id: number; ok: true; rows?: unknown[]; tx?: number }
  | { id: number; ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  fields: Record<string, string | number | undefined>;
}

export interface WorkerInit {
  /** a directory, or null for an in-memory database */
  dataDir: string | null;
}

const asText = (value: string) => value;
/** drizzle-orm/pglite's parsers (0.45, session.js): these types reach Drizzle as text */
const DRIZZLE_PARSERS = {
  [types.TIMESTAMP]: asText,
  [types.TIMESTAMPTZ]: asText,
  [types.INTERVAL]: asText,
  [types.DATE]: asText,
  1231: asText, // numeric[]
  1115: asText, // timestamp[]
  1185: asText, // timestamptz[]
  1187: asText, // interval[]
  1182: asText, // date[]
};

/** what PGlite's DatabaseError carries (pg-protocol's fields), and a plain Error's `code` */
const ERROR_FIELDS = ['code', 'severity', 'detail', 'hint', 'position', 'schema', 'table', 'column', 'constraint', 'routine'] as const;

function serialize(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err), fields: {} };
  const fields: SerializedError['fields'] = {};
  for (const k of ERROR_FIELDS) {
    const v = (err as unknown as Record<string, unknown>)[k];
    if (typeof v === 'string' || typeof v === 'number') fields[k] = v;
  }
  return { name: err.name, message: err.message, fields };
}

const port = parentPort;
if (!port) throw new Error('pglite-worker.ts runs as a worker thread (client.ts starts it)');
const init = workerData as WorkerInit;
const pg = init.dataDir === null ? new PGlite() : new PGlite(init.dataDir);

/** open transactions: their handle, and how to end them */
const open = new Map<number, { tx: Transaction; end: (commit: boolean) => void }>();
/** a rollback asked for by the client: the transaction's function rejects with this */
const ROLLBACK = Symbol('rollback');
/** per open transaction: tells it which request its end answers */
const ends = new Map<number, (id: number) => void>();
let nextTx = 1;

function reply(m: WorkerReply): void {
  port!.postMessage(m);
}

function target(tx: number): PGlite | Transaction {
  if (tx === 0) return pg;
  const t = open.get(tx);
  if (!t) throw new Error(`transaction ${tx} is not open`);
  return t.tx;
}

async function handle(m: WorkerRequest): Promise<void> {
  switch (m.op) {
    case 'query': {
      const r = await target(m.tx).query(m.text, m.params, { rowMode: m.mode, ...(m.drizzle ? { parsers: DRIZZLE_PARSERS } : {}) });
      reply({ id: m.id, ok: true, rows: r.rows });
      return;
    }
    case 'exec':
      await target(m.tx).exec(m.text);
      reply({ id: m.id, ok: true });
      return;
    case 'begin': {
      const txId = nextTx++;
      // answered once the transaction holds PGlite; its end is answered by 'end' below
      let endId = 0;
      pg.transaction(
        (tx) =>
          new Promise<void>((resolve, reject) => {
            open.set(txId, {
              tx,
              end: (commit) => (commit ? resolve() : reject(ROLLBACK)),
            });
            reply({ id: m.id, ok: true, tx: txId });
          }),
      ).then(
        () => {
          open.delete(txId);
          reply({ id: endId, ok: true });
        },
        (err) => {
          open.delete(txId);
          if (err === ROLLBACK) reply({ id: endId, ok: true });
          else if (endId) reply({ id: endId, ok: false, error: serialize(err) });
          else reply({ id: m.id, ok: false, error: serialize(err) });
        },
      );
      // the 'end' message sets endId before it resolves the transaction's promise
      ends.set(txId, (id) => (endId = id));
      return;
    }
    case 'end': {
      const t = open.get(m.tx);
      const setEnd = ends.get(m.tx);
      if (!t || !setEnd) throw new Error(`transaction ${m.tx} is not open`);
      ends.delete(m.tx);
      setEnd(m.id);
      t.end(m.commit);
      return;
    }
    case 'close':
      await pg.close();
      reply({ id: m.id, ok: true });
      return;
  }
}
port.on('message', (m: WorkerRequest) => {
  handle(m).catch((err: unknown) => reply({ id: m.id, ok: false, error: serialize(err) }));
});

pg.waitReady.then(
  () => port.postMessage({ ready: true }),
  (err: unknown) => port.postMessage({ ready: false, error: serialize(err) }),
);
