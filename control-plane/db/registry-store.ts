// Persistence of the registry: facilities and resources rows, read at start and kept current
// from hellos and online/offline transitions. Plain rows: control-plane/registry/load.ts fills
// the in-memory registry from them and control-plane/registry/tracker.ts writes its changes; the
// registry's own types fit the shapes here.
import { eq, sql } from 'drizzle-orm';
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

export async function saveHello(
  db: Db,
  site: Pick<SiteRow, 'id' | 'lastSeenMs' | 'agentVersion' | 'agentSession' | 'agentHostname'>,
  devices: Omit<DeviceRow, 'lastSeenMs'>[],
): Promise<void> {
  await db.orm
    .update(facilities)
    .set({
      agentVersion: site.agentVersion,
      agentSession: site.agentSession,
      agentHostname: site.agentHostname,
      lastSeenAt: site.lastSeenMs ? new Date(site.lastSeenMs) : null,
      updatedAt: sql`now()`,
    })
    .where(eq(facilities.id, site.id));
  if (devices.length === 0) return;
  // A site may have thousands of devices: one statement with one array parameter per column.
  await db.query(
    `INSERT INTO resources (id, facility_id, kind, model, driver, endpoint, serial, rated_power_w, rated_hashrate_ths, memory_total_mib)
     SELECT id, f, k, m, dr, nullif(ep, ''), nullif(se, ''), p, h, mem
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::float8[], $9::float8[], $10::float8[])
       AS r(id, f, k, m, dr, ep, se, p, h, mem)
     ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, model = excluded.model,
       driver = excluded.driver, endpoint = excluded.endpoint, serial = excluded.serial, rated_power_w = excluded.rated_power_w,
       rated_hashrate_ths = excluded.rated_hashrate_ths, memory_total_mib = excluded.memory_total_mib, updated_at = now()
     -- a device stays with the site that owns it: the gateway refuses a Hello that claims another
     -- site's device, and this is the backstop
     WHERE resources.facility_id = excluded.facility_id`,
    [
      devices.map((d) => d.id), devices.map((d) => d.siteId), devices.map((d) => d.kind), devices.map((d) => d.model),
      devices.map((d) => d.driver), devices.map((d) => d.endpoint ?? ''), devices.map((d) => d.serial ?? ''),
      devices.map((d) => d.ratedPowerW), devices.map((d) => d.ratedHashrateThs), devices.map((d) => d.memoryTotalMib),
    ],
  );
}

export async function saveChanges(db: Db, changes: StatusChange[]): Promise<void> {
  const sites = changes.flatMap((c) => (c.type === 'site' ? [c.site] : []));
  const devices = changes.flatMap((c) => (c.type === 'device' ? [c.device] : []));
  for (const s of sites) {
    await db.orm
      .update(facilities)
      .set({ online: s.online, lastSeenAt: s.lastSeenMs ? new Date(s.lastSeenMs) : null, updatedAt: sql`now()` })
      .where(eq(facilities.id, s.id));
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
