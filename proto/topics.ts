// The one module that names MQTT topics. The agent publishes with these builders, the control
// plane subscribes and parses with them, and the broker's publish ACL accepts only what
// parseTopic recognises, so a topic can never be spelled two ways.

export const TOPIC_ROOT = 'hcp/v1';

/** Site ids and region ids: lowercase letters, digits and dashes, 1..63 long (DNS-label-like). */
export const SITE_ID_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

export function isValidSiteId(id: string): boolean {
  return SITE_ID_PATTERN.test(id);
}

function checkSite(site: string): string {
  if (!isValidSiteId(site)) throw new Error(`invalid site id ${JSON.stringify(site)}`);
  return site;
}

export const topics = {
  /** protobuf hcp.v1.TelemetryBatch, QoS 1 */
  telemetry: (site: string) => `${TOPIC_ROOT}/sites/${checkSite(site)}/telemetry`,
  /** retained JSON SiteStatusPayload; the agent's last will sets it offline */
  status: (site: string) => `${TOPIC_ROOT}/sites/${checkSite(site)}/status`,
  /** subscription filters for the control plane */
  allTelemetry: `${TOPIC_ROOT}/sites/+/telemetry`,
  allStatus: `${TOPIC_ROOT}/sites/+/status`,
  everything: `${TOPIC_ROOT}/#`,
} as const;

export type ParsedTopic =
  | { kind: 'telemetry'; site: string }
  | { kind: 'status'; site: string };

/** Returns what a concrete topic is, or null when it is not one of ours. */
export function parseTopic(topic: string): ParsedTopic | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || parts[0] !== 'hcp' || parts[1] !== 'v1' || parts[2] !== 'sites') return null;
  const site = parts[3]!;
  if (!isValidSiteId(site)) return null;
  if (parts[4] === 'telemetry') return { kind: 'telemetry', site };
  if (parts[4] === 'status') return { kind: 'status', site };
  return null;
}

/** JSON payload of the retained status topic. */
export interface SiteStatusPayload {
  site: string;
  state: 'online' | 'offline';
  /** the agent session that wrote it, so a stale last will cannot mark a newer session offline */
  session: string;
  ts: string;
  agent_version?: string;
}

export function encodeStatus(p: SiteStatusPayload): string {
  return JSON.stringify(p);
}

/** Parses a status payload; returns null for anything that is not a well-formed status. */
export function decodeStatus(payload: Buffer | string): SiteStatusPayload | null {
  let v: unknown;
  try {
    v = JSON.parse(payload.toString());
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.site !== 'string' || !isValidSiteId(o.site)) return null;
  if (o.state !== 'online' && o.state !== 'offline') return null;
  if (typeof o.session !== 'string' || typeof o.ts !== 'string') return null;
  return {
    site: o.site,
    state: o.state,
    session: o.session,
    ts: o.ts,
    ...(typeof o.agent_version === 'string' ? { agent_version: o.agent_version } : {}),
  };
}
