// The live keys, in memory: every REST call, gRPC call, agent stream and MQTT login is checked
// here without a database round trip. The table's version is polled (one max() every 250 ms),
// and the ring reloads when it moves, so a key revoked by any process — this control plane, a
// replica, or `npm run keys` against the database — stops working within a second. Listeners
// hear which keys went away, so open streams and broker sessions made with them are closed.
import type { Logger } from 'pino';
import type { Db } from '../db/client.js';
import { keysChangedSince, keysVersion, loadLiveKeys } from '../db/key-store.js';
import type { Principal } from './roles.js';
import { hashSecret, SECRET_PATTERN } from './secrets.js';

export interface KeyRing {
  /** the principal of a secret, or null (unknown, revoked or malformed) */
  authenticate(secret: string | null | undefined): Principal | null;
  /** is this key still live? */
  isLive(keyId: string): boolean;
  /** reload now: after this process made or revoked a key */
  refresh(): Promise<void>;
  /** hears the ids of keys that are no longer live; returns the unsubscribe */
  onRevoked(listener: (keyIds: string[]) => void): () => void;
  size(): number;
  close(): Promise<void>;
}

export async function createKeyRing(o: { db: Pick<Db, 'orm'>; log: Logger; pollMs?: number }): Promise<KeyRing> {
  let byHash = new Map<string, Principal>();
  let byId = new Map<string, Principal>();
  let version = '';
  const listeners = new Set<(ids: string[]) => void>();
  let loading: Promise<void> | null = null;
  let closed = false;

  const load = async () => {
    const v = await keysVersion(o.db);
    if (v === version) return;
    const rows = await loadLiveKeys(o.db);
    const nextHash = new Map<string, Principal>();
    const nextId = new Map<string, Principal>();
    for (const r of rows) {
      const p: Principal = { keyId: r.id, name: r.name, role: r.role, customerId: r.customerId, siteId: r.siteId };
      nextHash.set(r.secretSha256, p);
      nextId.set(r.id, p);
    }
    const gone = [...byId.keys()].filter((id) => !nextId.has(id));
    byHash = nextHash;
    byId = nextId;
    version = v;
    if (gone.length) {
      o.log.info({ keys: gone }, 'keys revoked');
      for (const l of listeners) l(gone);
    }
  };
  const reload = (): Promise<void> => {
    loading ??= load().finally(() => {
      loading = null;
    });
    return loading;
  };

  await reload();
  const timer = setInterval(() => {
    if (!closed) reload().catch((err) => o.log.warn({ err: (err as Error).message }, 'key ring refresh failed; keeping the keys it has'));
  }, o.pollMs ?? 250);
  timer.unref();

  return {
    authenticate(secret) {
      if (!secret || !SECRET_PATTERN.test(secret)) return null;
      return byHash.get(hashSecret(secret)) ?? null;
    },
    isLive: (id) => byId.has(id),
    async refresh() {
      // After this process made or revoked a key: only what changed since the last whole read is
      // read (provisioning 5,000 site keys one by one read every key 5,000 times), merged, and
      // `version` is left alone so the next poll reads everything (a key of another process
      // with a lower version may commit after this read). Nothing else loads meanwhile: a whole
      // read begun before the change would put back maps without it.
      while (loading) await loading.catch(() => {});
      loading = (async () => {
        const gone: string[] = [];
        for (const r of await keysChangedSince(o.db, version || '0')) {
          const old = byId.get(r.id);
          if (r.revoked) {
            if (!old) continue;
            byId.delete(r.id);
            byHash.delete(r.secretSha256);
            gone.push(r.id);
            continue;
          }
          const p: Principal = { keyId: r.id, name: r.name, role: r.role, customerId: r.customerId, siteId: r.siteId };
          byHash.set(r.secretSha256, p);
          byId.set(r.id, p);
        }
        if (gone.length) {
          o.log.info({ keys: gone }, 'keys revoked');
          for (const l of listeners) l(gone);
        }
      })().finally(() => {
        loading = null;
      });
      await loading;
    },
    onRevoked(l) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    size: () => byId.size,
    async close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
