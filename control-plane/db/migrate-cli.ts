// `npm run migrate`: applies pending migrations to DATABASE_URL and prints what it did.
import { createDb } from './client.js';
import { migrate } from './migrate.js';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: npm run migrate applies migrations to a PostgreSQL server (the embedded PGlite store migrates itself at start).');
  process.exit(2);
}
const db = await createDb({ url, dataDir: ':memory:', maxConnections: 1 });
try {
  for (const o of await migrate(db)) console.log(`${o.status.padEnd(8)} ${o.name}${o.reason ? ` (${o.reason})` : ''}`);
} catch (err) {
  console.error(`migration failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.close();
}
