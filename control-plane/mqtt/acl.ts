// Who may do what on the embedded broker: pure rules, no I/O (broker.ts applies them). A client
// is one of three identities: the control plane's own in-process subscriber (known by its stream,
// never by a password), an anonymous client (only when the caller allows them), or a platform key
// (control-plane/auth/roles.ts). Prices and grid frequency move megawatts (a published 59.6 Hz
// curtails a region) and telemetry drives the registry, so publishing is narrow: a site's topics
// only by that site's agent, market and grid only by a feed (or an allowed anonymous client).
// Reading is by role. Every `$` topic is the broker's: nobody subscribes to one.
import { can, type Principal } from '../auth/roles.js';
import { marketTopics, parseMarketTopic } from '../../proto/market-topics.js';
import { parseTopic, topics } from '../../proto/topics.js';

export type Identity =
  | { readonly kind: 'service' }
  | { readonly kind: 'anonymous' }
  | { readonly kind: 'key'; readonly principal: Principal };

export const SERVICE: Identity = { kind: 'service' };
export const ANONYMOUS: Identity = { kind: 'anonymous' };

/** where a forbidden publish goes: acked, delivered to no one (no `$` filter is ever granted) */
export const FORBIDDEN_PREFIX = '$hcp/forbidden/';
/** where a publish to a topic HCP does not know goes */
export const UNKNOWN_PREFIX = '$hcp/unknown/';

/** who owns a session: a client id held by one owner cannot be taken by another */
export function ownerOf(id: Identity): string {
  return id.kind === 'key' ? `key:${id.principal.keyId}` : id.kind;
}

/** a short, secret-free description for logs */
export function describe(id: Identity): Record<string, string | null> {
  return id.kind === 'key' ? { identity: 'key', key: id.principal.keyId, name: id.principal.name, role: id.principal.role, site: id.principal.siteId } : { identity: id.kind };
}

/** May this identity hold an MQTT connection at all? A customer key has nothing to do there. */
export function mayConnect(id: Identity): boolean {
  return id.kind !== 'key' || id.principal.role !== 'customer';
}

/**
 * The `hcp-` client id prefix is reserved and bound to the login (MQTT 3.1.1 §3.1.3-1 leaves the
 * id to the client; a broker may refuse one, §3.1.3-9, with CONNACK 2): a second connection with
 * the same id takes the session over (§3.1.4-2), so an id that names a site, a key or the ingest
 * subscriber is only for that login.
 */
export function mayUseClientId(id: Identity, clientId: string): boolean {
  if (!clientId.startsWith('hcp-')) return true;
  const prefixed = (owner: string) => clientId === owner || clientId.startsWith(`${owner}-`);
  if (clientId.startsWith('hcp-agent-')) return id.kind === 'key' && id.principal.role === 'agent' && id.principal.siteId !== null && prefixed(`hcp-agent-${id.principal.siteId}`);
  if (clientId.startsWith('hcp-ingest-')) return id.kind === 'service';
  if (clientId.startsWith('hcp-key-')) return id.kind === 'key' && prefixed(`hcp-key-${id.principal.name}`);
  return false;
}

export type PublishVerdict = 'allow' | 'forbidden' | 'unknown_topic';

export function publishVerdict(id: Identity, topic: string): PublishVerdict {
  // `$` topics are the broker's ($SYS/, $hcp/): no client writes there (MQTT 3.1.1 §4.7.2)
  if (topic.startsWith('$')) return 'forbidden';
  const site = parseTopic(topic);
  if (site) return id.kind === 'key' && id.principal.role === 'agent' && id.principal.siteId === site.site ? 'allow' : 'forbidden';
  if (parseMarketTopic(topic)) return id.kind === 'anonymous' || (id.kind === 'key' && can(id.principal, 'feed.publish')) ? 'allow' : 'forbidden';
  return 'unknown_topic';
}

/** the filters an identity may subscribe to; any filter inside one of them is granted */
export function readableFilters(id: Identity, regionOf: (site: string) => string | undefined): string[] {
  const feeds = [marketTopics.allMarket, marketTopics.allGrid];
  if (id.kind === 'service') return [topics.everything];
  if (id.kind === 'anonymous') return [topics.allTelemetry, topics.allStatus, ...feeds];
  const p = id.principal;
  if (p.role === 'agent') {
    if (p.siteId === null) return [];
    const region = regionOf(p.siteId);
    return [topics.telemetry(p.siteId), topics.status(p.siteId), ...(region ? [marketTopics.gridFrequency(region)] : [])];
  }
  if (p.role === 'feed') return feeds;
  // Everything the broker delivers under hcp/v1/ is telemetry, status, market or grid (other
  // topics are moved under $hcp/unknown/), so a reader may take the whole tree.
  if (can(p, 'fleet.read')) return [topics.everything];
  return [];
}

export type SubscribeVerdict = 'allow' | 'reserved' | 'forbidden';

export function subscribeVerdict(id: Identity, filter: string, regionOf: (site: string) => string | undefined): SubscribeVerdict {
  // `#` and `+` never match `$` topics (MQTT 3.1.1 §4.7.2), but an explicit `$hcp/forbidden/#` would
  if (filter.startsWith('$')) return 'reserved';
  return readableFilters(id, regionOf).some((allowed) => filterWithin(filter, allowed)) ? 'allow' : 'forbidden';
}

/**
 * May this identity receive a message on this concrete topic? Checked again at delivery: Aedes
 * persists every filter of a SUBSCRIBE packet once one is granted, so a refused filter could
 * otherwise fill the session's offline queue and be delivered at the next reconnect.
 */
export function mayReceive(id: Identity, topic: string, regionOf: (site: string) => string | undefined): boolean {
  if (topic.startsWith('$')) return false;
  return readableFilters(id, regionOf).some((allowed) => topicMatches(allowed, topic));
}

/** does the topic filter match the topic name (MQTT 3.1.1 §4.7.1)? */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    // `#` also matches the parent level: `a/#` matches `a` (§4.7.1.2)
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** is every topic the filter can match also matched by `outer`? */
export function filterWithin(filter: string, outer: string): boolean {
  const f = filter.split('/');
  const o = outer.split('/');
  for (let i = 0; ; i++) {
    if (o[i] === '#') return true;
    if (i === f.length) return i === o.length;
    if (i === o.length) return false;
    // the filter's `#` reaches levels (and the parent level) that a `+` or a name does not
    if (f[i] === '#') return false;
    if (o[i] === '+') continue;
    if (f[i] === '+' || f[i] !== o[i]) return false;
  }
}

