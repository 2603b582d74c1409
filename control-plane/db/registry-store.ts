// Persistence of the registry: facilities and resources rows, read at start and kept current
// from hellos and online/offline transitions. Plain rows: control-plane/registry/load.ts fills
// the in-memory registry from them and control-plane/registry/tracker.ts writes its changes; the
// registry's own types fit the shapes here.
import type { Db } from './client.js';
import { auditLog, facilities, resources, type RESOURCE_KINDS } from './schema.js';

export interface SiteRow {
  id: string;
  name: string;
  region: string;
  powerCapacityKw: number;
  lastSeenMs: number | null;
  agentVersion: string | null;
  agentSession: string | null;
  agentHostname: string | null;
}

export interface DeviceRow {
  id: string;
  siteId: string;
  kind: (typeof RESOURCE_KINDS)[number];
  model: string;
  driver: string;
  endpoint: string | null;
  serial: string | null;
  ratedPowerW: number;
  ratedHashrateThs: number | null;
  memoryTotalMib: number | null;
  lastSeenMs: number | null;
}

/** an online/offline transition of a site or a device */
export type StatusChange =
  | { type: 'site'; site: { id: string; online: boolean; lastSeenMs: number | null } }
  | { type: 'device'; device: { id: string; online: boolean; lastSeenMs: number | null } };

export async function loadSites(db: Pick<Db, 'orm'>): Promise<SiteRow[]> {
  return (await db.orm.select().from(facilities)).map((f) => ({
    id: f.id, name: f.name, region: f.region, powerCapacityKw: f.powerCapacityKw,
    lastSeenMs: f.lastSeenAt?.getTime() ?? null, agentVersion: f.agentVersion, agentSession: f.agentSession, agentHostname: f.agentHostname,
  }));
}

export async function loadDevices(db: Pick<Db, 'orm'>): Promise<DeviceRow[]> {
  return (await db.orm.select().from(resources)).map((r) => ({
    id: r.id, siteId: r.facilityId, kind: r.kind, model: r.model, driver: r.driver, endpoint: r.endpoint, serial: r.serial,
    ratedPowerW: r.ratedPowerW, ratedHashrateThs: r.ratedHashrateThs, memoryTotalMib: r.memoryTotalMib, lastSeenMs: r.lastSeenAt?.getTime() ?? null,
  }));
}

/** a site made by an admin or with its credential (or, in development, by its agent's Hello) */
export async function insertSite(db: Db, s: { id: string; name: string; region: string; powerCapacityKw: number; timezone: string }): Promise<void> {
  await db.orm
    .insert(facilities)
    .values({ id: s.id, name: s.name, region: s.region, powerCapacityKw: s.powerCapacityKw, timezone: s.timezone, online: false })
    .onConflictDoNothing();
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

export interface HelloRow {
  site: Pick<SiteRow, 'id' | 'lastSeenMs' | 'agentVersion' | 'agentSession' | 'agentHostname'>;
  devices: Omit<DeviceRow, 'lastSeenMs'>[];
}

// One statement for any number of Hellos: the sites' agent columns by an UPDATE in a WITH, and
// every device they announce by one upsert, each column one array parameter (a site may have
// thousands of devices). A site or device named twice keeps its last Hello's values: ON CONFLICT
// cannot touch one row twice in a statement.
const SAVE_HELLOS_SQL = `WITH s AS (
  UPDATE facilities SET agent_version = nullif(r.v, ''), agent_session = nullif(r.se, ''), agent_hostname = nullif(r.h, ''),
    last_seen_at = CASE WHEN r.t > 0 THEN to_timestamp(r.t / 1000.0) END, updated_at = now()
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[]) AS r(id, v, se, h, t)
  WHERE facilities.id = r.id
)
INSERT INTO resources (id, facility_id, kind, model, driver, endpoint, serial, rated_power_w, rated_hashrate_ths, memory_total_mib)
SELECT id, f, k, m, dr, nullif(ep, ''), nullif(se, ''), p, h, mem
FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::float8[], $14::float8[], $15::float8[])
  AS r(id, f, k, m, dr, ep, se, p, h, mem)
ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, model = excluded.model,
  driver = excluded.driver, endpoint = excluded.endpoint, serial = excluded.serial, rated_power_w = excluded.rated_power_w,
  rated_hashrate_ths = excluded.rated_hashrate_ths, memory_total_mib = excluded.memory_total_mib, updated_at = now()
-- a device stays with the site that owns it: the gateway refuses a Hello that claims another
-- site's device, and this is the backstop
WHERE resources.facility_id = excluded.facility_id`;

/** what Hellos say of their sites and devices, in one statement (the gateway batches them: hello-writer.ts) */
export async function saveHellos(db: Pick<Db, 'query'>, hellos: readonly HelloRow[]): Promise<void> {
  if (hellos.length === 0) return;
  const sites = new Map<string, HelloRow['site']>();
  const devices = new Map<string, HelloRow['devices'][number]>();
  for (const h of hellos) {
    sites.set(h.site.id, h.site);
    for (const d of h.devices) devices.set(d.id, d);
  }
  // in id order, as saveChanges: two statements locking the same rows in different orders
  // (a Hello batch and a sweep) would deadlock
  const ss = [...sites.values()].sort(byId);
  const ds = [...devices.values()].sort(byId);
  await db.query(SAVE_HELLOS_SQL, [
    ss.map((x) => x.id), ss.map((x) => x.agentVersion ?? ''), ss.map((x) => x.agentSession ?? ''), ss.map((x) => x.agentHostname ?? ''),
    ss.map((x) => x.lastSeenMs ?? 0),
    ds.map((d) => d.id), ds.map((d) => d.siteId), ds.map((d) => d.kind), ds.map((d) => d.model),
    ds.map((d) => d.driver), ds.map((d) => d.endpoint ?? ''), ds.map((d) => d.serial ?? ''),
    ds.map((d) => d.ratedPowerW), ds.map((d) => d.ratedHashrateThs), ds.map((d) => d.memoryTotalMib),
  ], { prepare: true });
}

export async function saveChanges(db: Db, changes: StatusChange[]): Promise<void> {
  const sites = changes.flatMap((c) => (c.type === 'site' ? [c.site] : [])).sort(byId);
  const devices = changes.flatMap((c) => (c.type === 'device' ? [c.device] : [])).sort(byId);
  if (sites.length > 0) {
    // one statement for every site's transition (a restart brings thousands back in one sweep)
    await db.query(
      `UPDATE facilities SET online = r.o = 1, last_seen_at = CASE WHEN r.t > 0 THEN to_timestamp(r.t / 1000.0) END, updated_at = now()
       FROM unnest($1::text[], $2::int2[], $3::float8[]) AS r(id, o, t) WHERE facilities.id = r.id`,
      [sites.map((s) => s.id), sites.map((s) => (s.online ? 1 : 0)), sites.map((s) => s.lastSeenMs ?? 0)],
      { prepare: true },
    );
  }
  if (devices.length > 0) {
    await db.query(
      // Flags travel as 0/1: postgres.js cannot bind a JS boolean[] as one bool[] parameter.
      `UPDATE resources SET online = r.o = 1, last_seen_at = to_timestamp(r.t / 1000.0), updated_at = now()
       FROM unnest($1::text[], $2::int2[], $3::float8[]) AS r(id, o, t) WHERE resources.id = r.id`,
      [devices.map((d) => d.id), devices.map((d) => (d.online ? 1 : 0)), devices.map((d) => d.lastSeenMs)],
      { prepare: true },
    );
  }
}

export async function audit(db: Db, actor: string, action: string, subject: string | null, details: Record<string, unknown> = {}): Promise<void> {
  await db.orm.insert(auditLog).values({ actor, action, subject, details });
}
