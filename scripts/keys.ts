// npm run keys -- create|list|revoke …: API keys and site credentials from a shell.
// Against a running control plane it goes through the admin API (PGlite allows one process);
// with none answering it opens the database itself (DATABASE_URL, or the PGlite data dir).
import { parseArgs } from 'node:util';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { ROLES, type Role } from '../control-plane/auth/roles.js';
import { createKeyAdmin, type KeyAdmin } from '../control-plane/auth/key-admin.js';
import { createKeyRing } from '../control-plane/auth/key-ring.js';
import { redactUrl } from '../control-plane/config.js';
import { createAuditWriter } from '../control-plane/db/audit-writer.js';
import { createDb } from '../control-plane/db/client.js';
import type { KeyRow } from '../control-plane/db/key-store.js';
import { migrate } from '../control-plane/db/migrate.js';
import { loadRegistry } from '../control-plane/registry/load.js';
import { HcpError } from '../control-plane/errors.js';
import { Registry } from '../control-plane/registry/registry.js';

const USAGE = `npm run keys -- <command> [options]

  create --role ROLE [--name NAME] [--site ID] [--customer ID] [--out FILE]
         ROLE: ${ROLES.join(', ')}. An agent key needs --site (the site is created if new);
         a customer key needs --customer. The secret is printed once, or written to FILE (0600).
  list [--all]         keys without their secrets (--all: revoked ones too)
  revoke ID|NAME [--reason TEXT]
  --json               machine-readable output

Against a running control plane (HCP_URL, default http://127.0.0.1:$HCP_HTTP_PORT or 8080) it uses
the API with HCP_API_KEY, HCP_ADMIN_KEY or $HCP_DATA_DIR/admin.key. With none running it opens the
database: DATABASE_URL, or PGlite in HCP_DATA_DIR (default ./data).
`;

type Row = ReturnType<typeof keyView>;
const keyView = (k: KeyRow | Record<string, unknown>) => {
  const r = k as Record<string, unknown>;
  if ('createdAtMs' in r) {
    const x = k as KeyRow;
    return { id: x.id, name: x.name, role: x.role, customer_id: x.customerId, site: x.siteId, created_at: new Date(x.createdAtMs).toISOString(), revoked_at: x.revokedAtMs ? new Date(x.revokedAtMs).toISOString() : null };
  }
  return { id: r.id as string, name: r.name as string, role: r.role as Role, customer_id: r.customer_id as string | null, site: r.site as string | null, created_at: r.created_at as string, revoked_at: r.revoked_at as string | null };
};

interface Backend {
  create(k: { role: Role; name?: string; site?: string; customer?: string }): Promise<{ key: Row; secret: string }>;
  list(all: boolean): Promise<Row[]>;
  revoke(idOrName: string, reason: string | null): Promise<Row>;
  close(): Promise<void>;
}

function fail(message: string, code = 1): never {
  console.error(`keys: ${message}`);
  process.exit(code);
}

async function apiBackend(base: string, key: string): Promise<Backend> {
  const call = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const j = (await r.json().catch(() => ({}))) as Record<string, unknown> & { error?: { message: string } };
    if (!r.ok) fail(`${method} ${path}: ${r.status} ${j.error?.message ?? ''}`);
    return j;
  };
  const list = async (all: boolean) => ((await call('GET', `/api/v1/keys${all ? '?include_revoked=true' : ''}`)).keys as Array<Record<string, unknown>>).map(keyView);
  return {
    async create(k) {
      const j = await call('POST', '/api/v1/keys', { role: k.role, name: k.name, site: k.site, customer_id: k.customer });
      return { key: keyView(j), secret: j.secret as string };
    },
    list,
    async revoke(idOrName, reason) {
      const id = idOrName.startsWith('key_') ? idOrName : (await list(false)).find((k) => k.name === idOrName)?.id;
      if (!id) fail(`no live key named ${idOrName}`);
      return keyView(await call('DELETE', `/api/v1/keys/${id}${reason ? `?reason=${encodeURIComponent(reason)}` : ''}`));
    },
    close: async () => {},
  };
}

async function dbBackend(): Promise<Backend> {
  const log = pino({ level: 'silent' });
  const url = process.env.DATABASE_URL;
  const db = await createDb({ url, dataDir: process.env.HCP_DATA_DIR ?? './data' }).catch((err: Error) => fail(`cannot open the database (${url ? redactUrl(url) : 'PGlite'}): ${err.message}`));
  await migrate(db);
  const registry = new Registry({ staleAfterMs: 10_000 });
  await loadRegistry(db, registry);
  const ring = await createKeyRing({ db, log });
  const audit = createAuditWriter({ db, log });
  const admin: KeyAdmin = createKeyAdmin({ db, ring, registry, audit, log, maxSites: Number(process.env.HCP_MAX_SITES ?? 1000) });
  const by = `cli:${process.env.USER ?? 'shell'}`;
  const list = async (all: boolean) => (await admin.list({ includeRevoked: all })).map(keyView);
  return {
    async create(k) {
      const { key, secret } = await admin.create({ role: k.role, name: k.name, siteId: k.site, customerId: k.customer }, by);
      return { key: keyView(key), secret };
    },
    list,
    async revoke(idOrName, reason) {
      const id = idOrName.startsWith('key_') ? idOrName : (await list(false)).find((k) => k.name === idOrName)?.id;
      if (!id) fail(`no live key named ${idOrName}`);
      return keyView(await admin.revoke(id, by, reason));
    },
    async close() {
      await audit.close();
      await ring.close();
      await db.close();
    },
  };
}

function adminKey(): string | null {
  const fromEnv = process.env.HCP_API_KEY ?? process.env.HCP_ADMIN_KEY;
  if (fromEnv) return fromEnv;
  const file = join(process.env.HCP_DATA_DIR ?? './data', 'admin.key');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        role: { type: 'string' }, name: { type: 'string' }, site: { type: 'string' }, customer: { type: 'string' }, out: { type: 'string' },
        all: { type: 'boolean' }, reason: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    fail(`${(err as Error).message}\n\n${USAGE}`, 2);
  }
  const { values: o, positionals: [cmd, arg] } = parsed;
  if (o.help || !cmd) {
    process.stdout.write(USAGE);
    process.exit(o.help ? 0 : 2);
  }
  if (!['create', 'list', 'revoke'].includes(cmd)) fail(`unknown command ${cmd}\n\n${USAGE}`, 2);
  if (cmd === 'create' && !(ROLES as readonly string[]).includes(o.role ?? '')) fail(`create needs --role, one of ${ROLES.join(', ')}`, 2);
  if (cmd === 'revoke' && !arg) fail('revoke needs a key id or name', 2);

  const base = process.env.HCP_URL ?? `http://127.0.0.1:${process.env.HCP_HTTP_PORT ?? 8080}`;
  const running = await fetch(`${base}/health`).then((r) => r.ok, () => false);
  let backend: Backend;
  if (running) {
    const key = adminKey();
    if (!key) fail(`a control plane answers at ${base}, and no admin key was given: set HCP_API_KEY (or HCP_ADMIN_KEY), or keep it in $HCP_DATA_DIR/admin.key`);
    backend = await apiBackend(base, key);
  } else {
    backend = await dbBackend();
  }
  try {
    if (cmd === 'create') {
      const { key, secret } = await backend.create({ role: o.role as Role, name: o.name, site: o.site, customer: o.customer });
      if (o.out) {
        writeFileSync(o.out, `${secret}\n`, { mode: 0o600 });
        chmodSync(o.out, 0o600);
      }
      if (o.json) console.log(JSON.stringify({ ...key, ...(o.out ? { secret_file: o.out } : { secret }) }));
      else {
        console.log(`created ${key.id} (${key.name}, ${key.role}${key.site ? `, site ${key.site}` : ''}${key.customer_id ? `, customer ${key.customer_id}` : ''})`);
        console.log(o.out ? `secret written to ${o.out} (mode 0600)` : `secret (shown once; it is not stored): ${secret}`);
      }
    } else if (cmd === 'list') {
      const keys = await backend.list(Boolean(o.all));
      if (o.json) console.log(JSON.stringify(keys));
      else for (const k of keys) console.log([k.id, k.name.padEnd(24), k.role.padEnd(8), k.site ?? k.customer_id ?? '-', k.created_at, k.revoked_at ? `revoked ${k.revoked_at}` : 'live'].join('  '));
    } else {
      const k = await backend.revoke(arg!, o.reason ?? null);
      console.log(o.json ? JSON.stringify(k) : `revoked ${k.id} (${k.name})`);
    }
  } catch (err) {
    if (err instanceof HcpError) fail(err.message);
    throw err;
  } finally {
    await backend.close();
  }
}

await main();
