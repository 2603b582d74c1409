// Who may do what. Every caller of the control plane is a Principal: an API key with one role
// (people and programs), an agent credential bound to its site, or a feed credential that may
// publish market prices and grid frequency. The role decides the permissions; this table is the
// only place that says which role has which permission (docs/security.md).
export const ROLES = ['admin', 'operator', 'customer', 'viewer', 'agent', 'feed'] as const;
export type Role = (typeof ROLES)[number];

export const PERMISSIONS = [
  /** read the fleet: status, sites, devices, telemetry, commands, prices, grid, economics, usage */
  'fleet.read',
  /** move megawatts: mining, curtail, mode, schedule, demand response, allocate, release */
  'fleet.control',
  /** the agents' under-frequency trips: thresholds, covered ASICs, disarming */
  'grid.admin',
  /** API keys and site credentials; creating sites */
  'keys.admin',
  /** submit, list, read and cancel workloads (a customer: only its own) */
  'workloads.submit',
  'workloads.read',
  'workloads.cancel',
  /** GPU usage per customer (a customer: only its own) */
  'usage.read',
  /** the gRPC AgentGateway stream and its site's MQTT topics */
  'agent.connect',
  /** publish market prices and grid frequency on MQTT */
  'feed.publish',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['fleet.read', 'fleet.control', 'grid.admin', 'keys.admin', 'workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  operator: ['fleet.read', 'fleet.control', 'workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  customer: ['workloads.submit', 'workloads.read', 'workloads.cancel', 'usage.read'],
  viewer: ['fleet.read', 'workloads.read', 'usage.read'],
  agent: ['agent.connect'],
  feed: ['feed.publish'],
};

export interface Principal {
  /** the key's id (key_…), stable across renames; never the secret */
  readonly keyId: string;
  /** the key's name: the audit actor is key:<name> */
  readonly name: string;
  readonly role: Role;
  /** customer keys: the one customer whose workloads they see */
  readonly customerId: string | null;
  /** agent keys: the one site they speak for */
  readonly siteId: string | null;
}

export function can(p: Principal, perm: Permission): boolean {
  return GRANTS[p.role].includes(perm);
}

/** the audit actor of a principal */
export function actorOf(p: Principal): string {
  return p.role === 'agent' ? `agent:${p.siteId}` : `key:${p.name}`;
}

/** the MQTT user name a principal logs in with: an agent's site id, else the key's name */
export function mqttUsernameOf(p: Principal): string {
  return p.role === 'agent' ? p.siteId! : p.name;
}
