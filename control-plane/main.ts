// Control-plane process: configuration, wiring and signals only.
//
// A database that does not answer at start (refused, unreachable, shutting down, the session
// ended mid-migration: isDbUnavailable) is waited for, not fatal: the start is retried with
// backoff (START_RETRY_MS doubling to START_RETRY_MAX_MS, each attempt logged), and meanwhile the
// REST port answers /health 200 and /ready 503 {checks: {database: false}} (http/starting.ts),
// so an orchestrator neither restarts the process nor sends it traffic. Once the database
// answers, the starting listener is closed just before the full API binds the same port. Any
// other start failure (a bad migration, a refused role, a TLS file missing) still exits.
import type { ServerType } from '@hono/node-server';
import { ConfigError, loadControlPlaneConfig, type ControlPlaneConfig } from './config.js';
import { createControlPlane, readTls, type ControlPlane } from './control-plane.js';
import { dbMessage, isDbUnavailable, isTypeFetchRejection } from './db/db-error.js';
import { listenHttp } from './http/listen.js';
import { startingFetch } from './http/starting.js';
import { createLogger } from './log.js';

const START_RETRY_MS = 500;
const START_RETRY_MAX_MS = 10_000;

let config: ControlPlaneConfig;
let tls: ReturnType<typeof readTls>;
try {
  config = loadControlPlaneConfig();
  tls = readTls(config);
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hcp control-plane: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const log = createLogger(config.LOG_LEVEL);
let cp: ControlPlane | undefined;
let stopping = false;

// The starting listener: opened at the first failed attempt, closed when the full API takes over.
let starting: ServerType | null = null;
let httpPort = config.HCP_HTTP_PORT;
const waiting = { since: Date.now(), attempts: 0 };
const closeStarting = async () => {
  const s = starting;
  starting = null;
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
};

const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  // A deadline forces the exit if a dependency hangs.
  setTimeout(() => {
    log.error('shutdown deadline passed; exiting');
    process.exit(1);
  }, 10_000).unref();
  Promise.all([closeStarting(), cp?.close()]).then(
    () => process.exit(0),
    (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
// A database connection ended while postgres.js fetched its types is a rejection the driver
// leaves unhandled (db-error.ts isTypeFetchRejection): the pool reconnects, nothing was lost.
// Every other unhandled rejection is a bug and ends the process, as Node's default does.
process.on('unhandledRejection', (reason) => {
  if (isTypeFetchRejection(reason)) {
    log.warn({ err: dbMessage(reason) }, 'a database connection ended while the driver fetched its types; it reconnects');
    return;
  }
  throw reason;
});
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));

for (let delay = START_RETRY_MS; !stopping; delay = Math.min(delay * 2, START_RETRY_MAX_MS)) {
  waiting.attempts++;
  try {
    cp = await createControlPlane({ ...config, HCP_HTTP_PORT: httpPort }, log, { beforeListen: closeStarting });
    if (waiting.attempts > 1) log.info({ attempts: waiting.attempts, waited_s: Math.round((Date.now() - waiting.since) / 1000) }, 'database answers; control plane started');
    break;
  } catch (err) {
    if (!config.DATABASE_URL || !isDbUnavailable(err)) {
      log.fatal({ err }, 'control plane failed to start');
      process.exit(1);
    }
    if (!starting && !stopping) {
      try {
        const l = await listenHttp(startingFetch(() => waiting), config.HCP_HTTP_HOST, httpPort, tls);
        starting = l.server;
        httpPort = l.port;
        log.info({ http: `${tls ? 'https' : 'http'}://${config.HCP_HTTP_HOST}:${httpPort}` }, 'waiting for the database: /health answers, /ready is false');
      } catch (listenErr) {
        log.fatal({ err: listenErr }, 'control plane failed to start: cannot listen for HTTP');
        process.exit(1);
      }
    }
    log.warn({ attempt: waiting.attempts, retry_in_ms: delay, err: dbMessage(err), code: (err as { code?: unknown }).code }, 'database unavailable at start; retrying');
    await new Promise((r) => setTimeout(r, delay));
  }
}
if (stopping && cp) await cp.close();
