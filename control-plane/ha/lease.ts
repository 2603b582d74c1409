// The leader lease: several control planes share one PostgreSQL database and all of them serve
// REST, gRPC and agent streams, but the singleton loops (scheduler, reconciler, economic
// dispatch, grid response, programs, command expiry) run only on the replica holding this lease.
//
// One row of `leases` (db/schema.ts) per lease. Taking it is one UPDATE that succeeds only when
// the row is expired or already ours, and bumps `token`; holding it is an UPDATE of expires_at
// every renewMs that succeeds only while the token is still ours. Time is the database's (now()),
// never a replica's clock, except for one local guard: a holder that has not renewed for ttlMs
// (the database unreachable) steps down on its own, since by then another may have taken it.
// Standbys try every renewMs, so a dead leader is replaced within ttlMs + renewMs (5 s by
// default); a leader that closes lets the lease go at once.
//
// Losing the lease (a renewal refused or failed, a fenced write refused: fence.ts) stops the
// loops at once: every listener of onChange hears `false` before the next loop tick. On PGlite
// (one process) the same statements run, and the one replica takes the lease at start.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { Gauge, type Registry as PromRegistry } from 'prom-client';
import type { Db } from '../db/client.js';
import { withFence, type Fence, type FencedError } from './fence.js';

export interface LeaseOptions {
  db: Pick<Db, 'query'>;
  log: Logger;
  metrics: PromRegistry;
  /** leases.name; default 'leader' */
  name?: string;
  /** who this replica is, shown in /api/v1/status; default host:pid:random */
  holder?: string;
  /** how long a taken lease lasts without renewal; default 4 s */
  ttlMs?: number;
  /** how often the holder renews and a standby tries; default 1 s */
  renewMs?: number;
}

export interface LeaseStatus {
  name: string;
  /** this replica */
  holder: string;
  leader: boolean;
  /** this replica's token while it leads */
  token: string | null;
  /** who holds it, as the database said at the last try */
  leaderHolder: string | null;
  since: string | null;
}

export interface Leadership {
  /** true while this replica holds the lease */
  leading(): boolean;
  /** the fence of the current term; null while not leading */
  fence(): Fence | null;
  /** runs fn under the current term's fence (fn as it is while not leading) */
  fenced<T>(fn: () => T): T;
  /** told at every gain (true) and loss (false) */
  onChange(listener: (leading: boolean) => void): () => void;
  status(): LeaseStatus;
  /** one try now (tests; the timer tries every renewMs) */
  tick(): Promise<void>;
  /** stops trying and lets the lease go if held */
  /** takes no new term from now on (shutdown begins); a term held is kept until close() */
  quiesce(): void;
  close(): Promise<void>;
}

/** a replica that always leads: one control plane with no lease (unit tests) */
export const ALWAYS_LEADING: Leadership = {
  leading: () => true,
  fence: () => null,
  fenced: (fn) => fn(),
  onChange: () => () => {},
  status: () => ({ name: 'leader', holder: 'local', leader: true, token: null, leaderHolder: 'local', since: null }),
  tick: async () => {},
  quiesce: () => {},
  close: async () => {},
};

let gauge: Gauge | null = null;

export async function createLease(o: LeaseOptions): Promise<Leadership> {
  const name = o.name ?? 'leader';
  const holder = o.holder ?? `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  const ttlMs = o.ttlMs ?? 4000;
  const renewMs = o.renewMs ?? 1000;
  const log = o.log;
  const existing = o.metrics.getSingleMetric('hcp_leader') as Gauge | undefined;
  gauge = existing ?? new Gauge({ name: 'hcp_leader', help: 'Whether this control plane holds the leader lease and runs the singleton loops (1) or stands by (0)', labelNames: ['lease'] as const, registers: [o.metrics] });
  const g = gauge;
  let token: string | null = null;
  let fence: Fence | null = null;
  let since: Date | null = null;
  let leaderHolder: string | null = null;
  let lastRenewed = 0;
  let closed = false;
  let quiesced = false;
  const listeners = new Set<(leading: boolean) => void>();
  const tell = (v: boolean) => {
    for (const l of listeners) {
      try {
        l(v);
      } catch (err) {
        log.error({ err }, 'leadership listener failed');
      }
    }
  };

  const lose = (why: string, extra: Record<string, unknown> = {}) => {
    if (token === null) return;
    log.warn({ lease: name, holder, token, why, ...extra }, 'leadership lost: singleton loops stop');
    token = null;
    fence = null;
    since = null;
    g.set({ lease: name }, 0);
    tell(false);
  };
  const gain = (t: string) => {
    token = t;
    since = new Date();
    lastRenewed = performance.now();
    fence = { name, token: t, onFenced: (err: FencedError) => lose('a fenced write was refused', { current: err.current }) };
    g.set({ lease: name }, 1);
    log.info({ lease: name, holder, token: t }, 'leadership gained: singleton loops run here');
    tell(true);
  };

  await o.db.query(
    `INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, '', 0, now() - interval '1 second') ON CONFLICT (name) DO NOTHING`,
    [name],
  );

  const ttl = ttlMs / 1000;
  let trying: Promise<void> | null = null;
  const attempt = async (): Promise<void> => {
    if (closed) return;
    if (token !== null) {
      // the local guard: unrenewed for a whole ttl, another may already have it
      if (performance.now() - lastRenewed > ttlMs) lose('not renewed within the ttl');
    }
    try {
      if (token !== null) {
        const held = token;
        const rows = await o.db.query<{ token: string }>(
          `UPDATE leases SET expires_at = now() + make_interval(secs => $4) WHERE name = $1 AND holder = $2 AND token = $3::bigint RETURNING token::text AS token`,
          [name, holder, held, ttl],
        );
        if (closed || token !== held) return;
        if (rows.length) {
          lastRenewed = performance.now();
          leaderHolder = holder;
        } else lose('the lease was taken by another replica');
        return;
      }
      if (quiesced) return;
      const rows = await o.db.query<{ token: string }>(
        `UPDATE leases SET holder = $2, token = token + 1, expires_at = now() + make_interval(secs => $3), acquired_at = now()
         WHERE name = $1 AND (expires_at < now() OR holder = $2) RETURNING token::text AS token`,
        [name, holder, ttl],
      );
      if (closed) return;
      if (rows[0] && quiesced) {
        // shutdown began while the lease was being taken: give it back at once
        await o.db.query(`UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1 AND holder = $2 AND token = $3::bigint`, [name, holder, rows[0].token]);
        return;
      }
      if (rows[0]) {
        leaderHolder = holder;
        gain(rows[0].token);
      } else {
        const [cur] = await o.db.query<{ holder: string }>('SELECT holder FROM leases WHERE name = $1', [name]);
        leaderHolder = cur?.holder || null;
      }
    } catch (err) {
      log.warn({ err, lease: name }, 'lease: the database did not answer');
      if (token !== null && performance.now() - lastRenewed > ttlMs) lose('the database did not answer within the ttl');
    }
  };
  const tick = () => (trying ??= attempt().finally(() => {
    trying = null;
  }));

  g.set({ lease: name }, 0);
  await tick();
  const timer = setInterval(() => void tick(), renewMs);
  timer.unref();

  return {
    leading: () => token !== null,
    fence: () => fence,
    fenced: (fn) => withFence(fence, fn),
    onChange(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    status: () => ({ name, holder, leader: token !== null, token, leaderHolder, since: since?.toISOString() ?? null }),
    tick,
    quiesce() {
      quiesced = true;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await trying;
      const held = token;
      lose('closing');
      if (held !== null) {
        // let the lease go now: a standby takes it at its next try, not after the ttl
        await o.db.query(`UPDATE leases SET expires_at = now() - interval '1 second' WHERE name = $1 AND holder = $2 AND token = $3::bigint`, [name, holder, held])
          .catch((err) => log.warn({ err }, 'lease: could not let the lease go; it expires by itself'));
      }
    },
  };
}
