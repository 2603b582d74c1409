// The replicas' shared channel: PostgreSQL LISTEN/NOTIFY (PostgreSQL docs, NOTIFY: a payload is
// at most 8000 bytes, delivered to every listening session after the sender's transaction
// commits, in commit order per sender). The command bus says here what the replica stored
// (new commands, transitions) so the replica holding a site's agent stream delivers them and the
// issuer's waiters hear the results (commands/bus.ts).
//
// NOTIFY is not durable: what is sent while a listener's connection is down is lost to it. So the
// listening connection is watched: every checkMs the notifier sends itself a ping and expects it
// back within checkMs; when it does not come (the connection dropped, a half-open socket), the
// listening connection is thrown away and a new one opened, and onListening runs after every
// (re)connect so its user re-reads from the tables what it may have missed.
//
// PGlite is one process and so one replica: nothing to tell anyone (LOCAL_NOTIFIER).
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import postgres from 'postgres';
import type { Db } from '../db/client.js';

export interface Notice {
  /** the replica that sent it (a replica ignores its own) */
  from: string;
  /** what kind of news */
  k: string;
  [field: string]: unknown;
}

export interface Notifier {
  readonly replica: string;
  /** sends to every other replica; a payload over the limit is the caller's to split */
  publish(n: Omit<Notice, 'from'>): Promise<void>;
  /** hears what other replicas send */
  subscribe(fn: (n: Notice) => void): () => void;
  /** told after every (re)connect of the listening connection: re-read what may have been missed */
  onListening(fn: () => void): () => void;
  /** listening now */
  listening(): boolean;
  close(): Promise<void>;
}

/** the largest payload NOTIFY takes, less room for the JSON around it */
export const MAX_NOTICE_BYTES = 7000;

export const LOCAL_NOTIFIER: Notifier = {
  replica: 'local',
  publish: async () => {},
  subscribe: () => () => {},
  onListening: () => () => {},
  listening: () => true,
  close: async () => {},
};

export interface PgNotifierOptions {
  url: string;
  /** sends go through the main pool */
  db: Pick<Db, 'query'>;
  log: Logger;
  channel?: string;
  replica?: string;
  /** how often the listening connection is proven alive; default 2 s */
  checkMs?: number;
}

export async function createPgNotifier(o: PgNotifierOptions): Promise<Notifier> {
  const channel = o.channel ?? 'hcp_commands';
  const replica = o.replica ?? randomBytes(6).toString('hex');
  const checkMs = o.checkMs ?? 2000;
  const log = o.log;
  const subs = new Set<(n: Notice) => void>();
  const listens = new Set<() => void>();
  let closed = false;
  let sql: postgres.Sql | null = null;
  let up = false;
  let pingSeen = 0;
  let pingSent = 0;

  const onPayload = (payload: string) => {
    let n: Notice;
    try {
      n = JSON.parse(payload) as Notice;
    } catch {
      return;
    }
    if (n.k === 'ping') {
      if (n.from === replica && typeof n.n === 'number') pingSeen = Math.max(pingSeen, n.n);
      return;
    }
    if (n.from === replica) return;
    for (const s of subs) {
      try {
        s(n);
      } catch (err) {
        log.error({ err, kind: n.k }, 'notice handler failed');
      }
    }
  };
  const listened = () => {
    up = true;
    log.info({ channel, replica }, 'listening for the other replicas');
    for (const l of listens) {
      try {
        l();
      } catch (err) {
        log.error({ err }, 'onListening handler failed');
      }
    }
  };

  const connect = async () => {
    // a client of its own, one connection: postgres.js keeps LISTEN on a dedicated connection
    const c = postgres(o.url, { max: 1, onnotice: () => {}, connect_timeout: 5, connection: { application_name: `hcp-listen-${replica}` } });
    sql = c;
    try {
      await c.listen(channel, onPayload, () => {
        if (sql === c) listened();
      });
    } catch (err) {
      if (sql === c) sql = null;
      await c.end({ timeout: 1 }).catch(() => {});
      throw err;
    }
  };
  const reconnect = async (why: string) => {
    up = false;
    pingSeen = pingSent;
    const old = sql;
    sql = null;
    log.warn({ channel, why }, 'the listening connection is down: opening a new one');
    if (old) void old.end({ timeout: 1 }).catch(() => {});
    try {
      await connect();
    } catch (err) {
      log.warn({ err }, 'could not listen yet; trying again');
    }
  };

  await connect();

  let checking = false;
  const timer = setInterval(() => {
    if (closed || checking) return;
    checking = true;
    void (async () => {
      if (!sql) return reconnect('not connected');
      if (pingSent > pingSeen) return reconnect(`ping ${pingSent} did not come back within ${checkMs} ms`);
      pingSent += 1;
      await o.db.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify({ from: replica, k: 'ping', n: pingSent })]).catch(() => {
        pingSent -= 1; // the pool is down, not (only) the listener: no verdict
      });
    })().finally(() => {
      checking = false;
    });
  }, checkMs);
  timer.unref();

  return {
    replica,
    async publish(n) {
      await o.db.query('SELECT pg_notify($1, $2)', [channel, JSON.stringify({ ...n, from: replica })]);
    },
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    onListening(fn) {
      listens.add(fn);
      return () => listens.delete(fn);
    },
    listening: () => up,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      const c = sql;
      sql = null;
      up = false;
      await c?.end({ timeout: 2 }).catch(() => {});
    },
  };
}
