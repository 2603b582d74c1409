// The control plane's grid response: frequency readings from the feeds go through the frequency
// guard (frequency-guard.ts); a trip curtails every ASIC of the region's sites through the
// command path, and a recovery brings back, in stages, the ASICs that were meant to mine. It
// also tells each connecting agent how to arm its local trip, and keeps the story for the API.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ArmGridTrip } from '../../proto/gen/hcp/v1/commands.js';
import { GRID_ACTOR, type MiningIntents } from '../commands/mining-intent.js';
import type { CommandBus } from '../commands/bus.js';
import type { CommandRecord } from '../commands/model.js';
import type { Operations } from '../commands/operations.js';
import type { GridTripSetting } from '../db/economics-store.js';
import type { SiteControls } from '../dispatch/site-controls.js';
import { HcpError } from '../errors.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { createFrequencyGuard, type GuardAction, type GuardConfig } from './frequency-guard.js';

export interface GridResponseDeps {
  guard: GuardConfig;
  /** regions whose agents arm a local trip at guard.tripHz */
  tripRegions: string[];
  registry: Registry;
  ops: Operations;
  bus: CommandBus;
  /** per-site trip settings an operator made; the default applies where there are none */
  controls: SiteControls;
  intent: MiningIntents;
  audit: AuditWriter;
  metrics: Metrics;
  log: Logger;
  now?: () => number;
}

interface GridEvent {
  region: string;
  action: string;
  at_ms: number;
  hz?: number;
  sites?: string[];
  commands?: number;
  detail?: string;
}

export function createGridResponse(d: GridResponseDeps) {
  const now = d.now ?? Date.now;
  const guard = createFrequencyGuard(d.guard);
  const events: GridEvent[] = [];
  // per region, per site: the ASICs to bring back, split into the guard's stages
  const toRestore = new Map<string, Map<string, string[]>>();
  const record = (e: GridEvent) => {
    events.push(e);
    if (events.length > 200) events.shift();
    d.metrics.gridActions.inc({ action: e.action });
    d.audit.write({ actor: GRID_ACTOR, action: `grid.${e.action}`, subject: e.region, details: { ...e }, timeMs: e.at_ms });
  };
  const sitesIn = (region: string) => d.registry.sites().filter((s) => s.region === region).map((s) => s.id).sort();

  async function act(a: GuardAction): Promise<void> {
    const at = now();
    if (a.kind === 'curtail') {
      const sites = sitesIn(a.region);
      // Remember what was meant to mine unless an earlier trip of this event already did.
      if (!toRestore.has(a.region)) toRestore.set(a.region, new Map(sites.map((s) => [s, d.intent.meantOn(s)])));
      if (sites.length === 0) return record({ region: a.region, action: 'curtail', at_ms: at, hz: a.hz, sites, commands: 0, detail: 'no sites in this region' });
      d.log.warn({ region: a.region, hz: a.hz, sites }, 'under-frequency: curtailing every ASIC in the region');
      const recs = await d.ops.curtail({ sites, reason: `under-frequency ${a.hz} Hz in ${a.region}`, actor: GRID_ACTOR, deadlineS: 60 });
      record({ region: a.region, action: 'curtail', at_ms: at, hz: a.hz, sites, commands: recs.length });
    } else if (a.kind === 'restore') {
      const plan = toRestore.get(a.region) ?? new Map<string, string[]>();
      let commands = 0;
      for (const [site, asics] of plan) {
        const per = Math.ceil(asics.length / a.of);
        const chunk = asics.slice((a.stage - 1) * per, a.stage * per);
        if (chunk.length === 0 || !d.registry.site(site)) continue;
        await d.ops.setMining({ site, enabled: true, deviceIds: chunk, actor: GRID_ACTOR, deadlineS: 120 });
        commands++;
      }
      d.log.info({ region: a.region, stage: a.stage, of: a.of, commands }, 'grid recovered: restoring a stage');
      record({ region: a.region, action: 'restore', at_ms: at, commands, detail: `stage ${a.stage} of ${a.of}` });
    } else {
      toRestore.delete(a.region);
      record({ region: a.region, action: 'restored', at_ms: at, hz: a.lowestHz, detail: `lowest reading ${a.lowestHz} Hz` });
    }
  }

  function tripFor(siteId: string): ArmGridTrip | undefined {
    const s = d.registry.site(siteId);
    if (!s) return undefined;
    const set = d.controls.get(siteId).gridTrip;
    if (set) return { enabled: set.enabled, region: s.region, thresholdHz: set.thresholdHz, deviceIds: set.deviceIds };
    if (!d.tripRegions.includes(s.region)) return undefined;
    return { enabled: true, region: s.region, thresholdHz: d.guard.tripHz, deviceIds: [] };
  }

  let chain: Promise<void> = Promise.resolve();
  const run = (actions: GuardAction[]) => {
    for (const a of actions) chain = chain.then(() => act(a)).catch((err) => d.log.error({ err, action: a }, 'grid response failed'));
  };
  const timer = setInterval(() => run(guard.tick(now())), 250);
  timer.unref();

  return {
    /** a reading from the feed; the guard runs on the control plane's clock */
    onFrequency(region: string, hz: number): void {
      run(guard.reading(region, hz, now()));
    },
    tripFor,
    /**
     * An operator sets (or, with null, resets to the default) a site's trip: stored, then sent
     * to its agent as an ArmGridTrip command, which waits for the agent if it is away.
     */
    async setTrip(siteId: string, setting: GridTripSetting | null, actor: string, reason: string | null = null): Promise<CommandRecord> {
      const s = d.registry.site(siteId)!;
      if (setting) {
        const asics = new Set(d.registry.devices({ site: siteId, kind: 'asic' }).map((x) => x.id));
        setting.deviceIds.forEach((id, i) => {
          if (!asics.has(id)) throw new HcpError('not_found', `device_ids.${i}: ${id} is not an ASIC of ${siteId}`, 'unknown_device', { fields: [{ field: `device_ids.${i}`, message: 'not an ASIC of this site' }] });
        });
      }
      await d.controls.setGridTrip(siteId, setting, actor, reason);
      const arm = tripFor(siteId) ?? { enabled: false, region: s.region, thresholdHz: 0, deviceIds: [] };
      const [rec] = await d.bus.submit([{
        id: `cmd-${randomUUID()}`, siteId, actor, deadlineMs: Date.now() + 300_000,
        payload: { type: 'arm_grid_trip', enabled: arm.enabled, region: arm.region, thresholdHz: arm.thresholdHz, deviceIds: arm.deviceIds },
      }]);
      return rec!;
    },
    onAgentTrip(siteId: string, region: string, hz: number): void {
      record({ region, action: 'agent_trip', at_ms: now(), hz, sites: [siteId] });
    },
    /** the economic engine leaves a site alone while its region is under the grid response */
    holding: (region: string) => guard.holding(region),
    idle: () => chain,
    view() {
      const regions = [...new Set([...guard.regions(), ...d.registry.sites().map((s) => s.region)])].sort();
      return {
        trip_hz: d.guard.tripHz,
        recover_hz: d.guard.recoverHz,
        hold_s: d.guard.holdS,
        stages: d.guard.stages,
        stage_interval_s: d.guard.stageIntervalS,
        regions: regions.map((r) => {
          const last = guard.lastReading(r);
          const st = guard.state(r);
          return {
            region: r,
            sites: sitesIn(r),
            agent_trips: sitesIn(r).map((site) => {
              const t = tripFor(site);
              return { site, armed: !!t?.enabled, threshold_hz: t?.enabled ? t.thresholdHz : null, device_ids: t?.enabled ? t.deviceIds : [], custom: !!d.controls.get(site).gridTrip };
            }),
            phase: st.phase,
            last_hz: last?.hz ?? null,
            last_reading_at: last ? new Date(last.atMs).toISOString() : null,
          };
        }),
        events: [...events].reverse().slice(0, 50).map((e) => ({ ...e, at: new Date(e.at_ms).toISOString() })),
      };
    },
    close(): Promise<void> {
      clearInterval(timer);
      return chain;
    },
  };
}

export type GridResponse = ReturnType<typeof createGridResponse>;
