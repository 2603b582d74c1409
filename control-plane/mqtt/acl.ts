// Who may connect to the embedded broker and what each may publish, when HCP_MQTT_USERS_FILE is
// set. Prices and grid frequency move megawatts (a published 59.6 Hz curtails a region), so with
// users configured only a feed may publish them, and an agent may publish only its own site's
// telemetry and status. Anyone authenticated may subscribe. Tokens are random strings; the file
// holds their SHA-256, so it can be read without giving a token away:
//   { "users": [ { "username": "texas-1", "token_sha256": "<hex>", "role": "agent", "site": "texas-1" },
//                { "username": "feeds",   "token_sha256": "<hex>", "role": "feed" },
//                { "username": "grafana", "token_sha256": "<hex>", "role": "reader" } ] }
// `npm run mqtt-user -- --username texas-1 --role agent --site texas-1` makes a token and its line.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseMarketTopic } from '../../proto/market-topics.js';
import { isValidSiteId, parseTopic } from '../../proto/topics.js';

const User = z.discriminatedUnion('role', [
  z.object({ username: z.string().min(1), token_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'), role: z.literal('agent'), site: z.string().refine(isValidSiteId, 'is not a site id') }),
  z.object({ username: z.string().min(1), token_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'), role: z.enum(['feed', 'reader', 'service']) }),
]);
const UsersFile = z.object({ users: z.array(User) });

export type Principal = { username: string; role: 'agent'; site: string } | { username: string; role: 'feed' | 'reader' | 'service' };

export interface MqttUsers {
  /** the principal for these credentials, or null */
  authenticate(username: string | undefined, password: Buffer | undefined): Principal | null;
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();

export function parseMqttUsers(json: unknown, where = 'HCP_MQTT_USERS_FILE'): Array<z.infer<typeof User>> {
  const r = UsersFile.safeParse(json);
  if (!r.success) {
    throw new Error(`${where}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ')}`);
  }
  const seen = new Set<string>();
  for (const u of r.data.users) {
    if (seen.has(u.username)) throw new Error(`${where}: username ${u.username} is listed twice`);
    seen.add(u.username);
  }
  return r.data.users;
}

export function loadMqttUsers(path: string): Array<z.infer<typeof User>> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`HCP_MQTT_USERS_FILE ${path}: ${(err as Error).message}`);
  }
  return parseMqttUsers(json, `HCP_MQTT_USERS_FILE ${path}`);
}

/** the listed users, plus `extra` (the control plane's own service login, made at start) */
export function mqttUsers(list: Array<z.infer<typeof User>>, extra: Array<{ principal: Principal; token: string }> = []): MqttUsers {
  const byName = new Map<string, { principal: Principal; hash: Buffer }>();
  for (const u of list) {
    const principal: Principal = u.role === 'agent' ? { username: u.username, role: 'agent', site: u.site } : { username: u.username, role: u.role };
    byName.set(u.username, { principal, hash: Buffer.from(u.token_sha256, 'hex') });
  }
  for (const e of extra) byName.set(e.principal.username, { principal: e.principal, hash: sha256(e.token) });
  return {
    authenticate(username, password) {
      const u = username === undefined ? undefined : byName.get(username);
      // hash even when the user is unknown, so the answer takes as long either way
      const given = sha256(password ?? Buffer.alloc(0));
      if (!u) return null;
      return timingSafeEqual(given, u.hash) ? u.principal : null;
    },
  };
}

/** may this principal publish on this topic? */
export function mayPublish(p: Principal, topic: string): boolean {
  const site = parseTopic(topic);
  if (site) return p.role === 'agent' && p.site === site.site;
  if (parseMarketTopic(topic)) return p.role === 'feed';
  // Topics HCP does not know are the broker's unknown-topic policy (counted, delivered to no HCP
  // subscriber); a reader still may not publish anything.
  return p.role !== 'reader';
}

/** a new random token and the line for the users file */
export function newMqttUser(u: { username: string; role: Principal['role']; site?: string }): { token: string; line: Record<string, string> } {
  const token = randomBytes(24).toString('base64url');
  const line: Record<string, string> = { username: u.username, token_sha256: sha256(token).toString('hex'), role: u.role };
  if (u.role === 'agent') line.site = u.site!;
  parseMqttUsers({ users: [line] }, 'the new user');
  return { token, line };
}
