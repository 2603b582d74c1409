// The registry at start: every site and device the database knows (control-plane/db/registry-store.ts),
// offline until it is heard from.
import type { Db } from '../db/client.js';
import { loadDevices, loadSites } from '../db/registry-store.js';
import type { Registry } from './registry.js';

export async function loadRegistry(db: Db, registry: Registry): Promise<void> {
  for (const f of await loadSites(db)) {
    registry.addSite(
      { id: f.id, name: f.name, region: f.region, powerCapacityKw: f.powerCapacityKw },
      { lastSeenMs: f.lastSeenMs, agentVersion: f.agentVersion, agentSession: f.agentSession, agentHostname: f.agentHostname },
    );
  }
  for (const d of await loadDevices(db)) registry.addDevice(d);
}
