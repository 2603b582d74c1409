// `npm run migrate`: applies pending migrations to DATABASE_URL and prints what it did. A
// database error (unreachable, a FATAL that ends the session) is reported and exits 1; it is
// never an uncaught exception (db/client.ts transaction).
import { createDb } from './client.js';
import { isTypeFetchRejection } from './db-error.js';
import { migrate } from './migrate.js';

// the one rejection postgres.js leaves unhandled (db-error.ts); the statement waiting on that
// connection fails too and is reported below
process.on('unhandledRejection', (reason) => {
  if (!isTypeFetchRejection(reason)) throw reason;
});

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: npm run migrate applies migrations to a PostgreSQL server (the embedded PGlite store migrates itself at start).');
  process.exit(2);
}
const db = await createDb({ url, dataDir: ':memory:', maxConnections: 1 });
try {
  const warn = (message: string) => console.error(`warning: ${message}`);
  for (const o of await migrate(db, undefined, { warn })) console.log(`${o.status.padEnd(8)} ${o.name}${o.reason ? ` (${o.reason})` : ''}`);
} catch (err) {
  const code = (err as { code?: unknown }).code;
  console.error(`migration failed: ${(err as Error).message}${typeof code === 'string' ? ` (${code})` : ''}`);
  process.exitCode = 1;
} finally {
  await db.close();
}
