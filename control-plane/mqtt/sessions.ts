// Persistent sessions (clean=false, MQTT 3.1.1 §3.1.2.4): who owns each, and when an offline one
// is forgotten. MQTT 3.1.1 keeps a session until the client returns, which for a client that never
// does is forever; like MQTT 5's Session Expiry Interval (§3.1.2.11.2) an offline session is
// forgotten after sessionExpiryMs. A session belongs to the login that made it: another login
// must not take it over, with its subscriptions and queued messages.
import type { SessionStore } from './session-store.js';

export interface Sessions {
  /** the owner of the persistent session with this client id, online or offline */
  ownerOf(clientId: string): string | undefined;
  /** a client registered: a clean session ends any earlier one (§3.1.2.4), a persistent one is kept */
  online(clientId: string, owner: string, clean: boolean): void;
  offline(clientId: string, clean: boolean): void;
  /** forgets every persistent session of this owner now (a revoked key) */
  forgetOwnedBy(owner: string): Promise<void>;
  close(): void;
}

export function createSessions(o: {
  store: SessionStore;
  expiryMs: number;
  /** a client with this id is connected now */
  isOnline: (clientId: string) => boolean;
  onExpired: (clientId: string) => void;
  onError: (err: Error) => void;
}): Sessions {
  const owners = new Map<string, string>();
  const timers = new Map<string, NodeJS.Timeout>();
  const cancel = (clientId: string) => {
    clearTimeout(timers.get(clientId));
    timers.delete(clientId);
  };
  const forget = async (clientId: string, reason: 'session_expired' | 'revoked') => {
    cancel(clientId);
    owners.delete(clientId);
    await o.store.forget(clientId, reason);
  };
  let closed = false;
  return {
    ownerOf: (clientId) => owners.get(clientId),
    online(clientId, owner, clean) {
      cancel(clientId);
      if (clean) owners.delete(clientId);
      else owners.set(clientId, owner);
    },
    offline(clientId, clean) {
      if (clean || closed || !owners.has(clientId)) return;
      cancel(clientId);
      const t = setTimeout(() => {
        timers.delete(clientId);
        // the id came back (a takeover registers the new client after the old one left)
        if (o.isOnline(clientId)) return;
        forget(clientId, 'session_expired').then(() => o.onExpired(clientId), o.onError);
      }, o.expiryMs);
      t.unref();
      timers.set(clientId, t);
    },
    async forgetOwnedBy(owner) {
      const ids = [...owners].filter(([id, who]) => who === owner && !o.isOnline(id)).map(([id]) => id);
      for (const id of ids) await forget(id, 'revoked');
    },
    close() {
      closed = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
    },
  };
}
