// The control plane's grid response: frequency readings from the feeds go through the frequency
// guard (frequency-guard.ts). A trip states a grid claim, every ASIC of each of the region's sites
// off, which outranks every other claim (claims/model.ts); the site's reconciler sends the
// sleeps at once, never ramp-limited. A recovery hands the ASICs back in the guard's stages: at
// stage k of N the grid claim shrinks to the last (N−k)/N of them, and at stage N it ends. What
// mines then is whatever the next claims down want, started within the site's ramp limit. It
// also tells each connecting agent how to arm its local trip, and keeps the story for the API.
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { ArmGridTrip } from '../../proto/gen/hcp/v1/commands.js';
import type { GridTripFired } from '../../proto/gen/hcp/v1/gateway.js';
import type { Claim } from '../claims/model.js';
import type { ClaimsService } from '../claims/service.js';
import type { CommandBus } from '../commands/bus.js';
import type { CommandRecord } from '../commands/model.js';
import type { GridTripSetting } from '../db/economics-store.js';
import type { SiteControls } from '../dispatch/site-controls.js';
import { HcpError } from '../errors.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';
import { createFrequencyGuard, type GuardAction, type GuardConfig } from './frequency-guard.js';

/** the grid response's actor in the audit log and on its claims */
export const GRID_ACTOR = 'system:grid';

export interface GridResponseDeps {
  guard: GuardConfig;
  /** regions whose agents arm a local trip at guard.tripHz */
  tripRegions: string[];
  registry: Registry;
  bus: CommandBus;
  claims: ClaimsService;
  /** after the claims changed: reconcile these sites now (a grid trip does not wait for a tick) */
  reconcileNow: (siteIds: string[]) => Promise<unknown>;
  /** per-site trip settings an operator made; the default applies where there are none */
  controls: SiteControls;
  audit: AuditWriter;
  metrics: Metrics;
  log: Logger;
  now?: () => number;
  /** a singleton loop (ha/lease.ts): runs only while this replica leads; default: always */
  leader?: Pick<Leadership, 'leading' | 'fenced'>;
}

interface GridEvent {
  region: string;
  action: string;
  at_ms: number;
  hz?: number;
  sites?: string[];
  commands?: number;
  detail?: string;
  /** an agent's trip: from the reading's own time to the ASICs told to sleep, on the agent's clock */
  trip_ms?: number;
  /** an agent's trip: how many ASICs it put to sleep */
  devices?: number;
  /** an agent's trip: what those ASICs drew in their last samples before it, the power shed */
  shed_w?: number;
}

/** readings kept per region for the grid-events timeline: at the feeds' 1/s, the last 10 minutes */
const READINGS_KEPT = 600;

export function createGridResponse(d: GridResponseDeps) {
  const now = d.now ?? Date.now;
  const guard = createFrequencyGuard(d.guard);
  const events: GridEvent[] = [];
  const record = (e: GridEvent) => {
    events.push(e);
    if (events.length > 200) events.shift();
    d.metrics.gridActions.inc({ action: e.action });
    d.audit.write({ actor: GRID_ACTOR, action: `grid.${e.action}`, subject: e.region, details: { ...e }, timeMs: e.at_ms });
  };
  const readings = new Map<string, { at_ms: number; hz: number }[]>();
  const sitesIn = (region: string) => d.registry.sites().filter((s) => s.region === region).map((s) => s.id).sort();
  const gridClaims = (region: string): Claim[] => d.claims.list().filter((c) => c.source === 'grid' && d.registry.site(c.siteId)?.region === region);
  // per region, per site: the ASICs the trip took, in the order the stages hand them back
  const taken = new Map<string, Map<string, string[]>>();

  // A restart with grid claims still live: the region is held until it recovers again.
  for (const c of d.claims.list().filter((x) => x.source === 'grid')) {
    const region = d.registry.site(c.siteId)?.region;
    if (region) guard.resume(region, now());
  }

  async function act(a: GuardAction): Promise<void> {
    const at = now();
    if (a.kind === 'curtail') {
      const sites = sitesIn(a.region);
      if (sites.length === 0) return record({ region: a.region, action: 'curtail', at_ms: at, hz: a.hz, sites, commands: 0, detail: 'no sites in this region' });
      d.log.warn({ region: a.region, hz: a.hz, sites }, 'under-frequency: every ASIC in the region off');
      const reason = `under-frequency ${a.hz} Hz in ${a.region}`;
      await d.claims.setMany(sites.map((siteId) => ({ siteId, source: 'grid' as const, deviceIds: [], want: { kind: 'mining' as const, enabled: false, powerTargetW: null }, reason, actor: GRID_ACTOR, expiresAtMs: null })));
      taken.set(a.region, new Map(sites.map((s) => [s, d.registry.devices({ site: s, kind: 'asic' }).map((x) => x.id).sort()])));
      const recs = await d.reconcileNow(sites);
      record({ region: a.region, action: 'curtail', at_ms: at, hz: a.hz, sites, commands: Array.isArray(recs) ? recs.length : 0 });
    } else if (a.kind === 'restore') {
      const claims = gridClaims(a.region);
      const plan = taken.get(a.region) ?? new Map<string, string[]>();
      const next: Parameters<ClaimsService['setMany']>[0] = [];
      const release: Claim[] = [];
      for (const c of claims) {
        const asics = plan.get(c.siteId) ?? d.registry.devices({ site: c.siteId, kind: 'asic' }).map((x) => x.id).sort();
        const keep = asics.slice(Math.ceil((a.stage * asics.length) / a.of));
        if (a.stage >= a.of || keep.length === 0) release.push(c);
        else next.push({ siteId: c.siteId, source: 'grid', deviceIds: keep, want: c.want, reason: `${c.reason}; restoring, stage ${a.stage} of ${a.of}`, actor: GRID_ACTOR, expiresAtMs: null, replaces: c.id });
      }
      if (next.length) await d.claims.setMany(next);
      for (const c of release) await d.claims.release(c.id, GRID_ACTOR, `grid recovered (stage ${a.stage} of ${a.of})`);
      const sites = claims.map((c) => c.siteId);
      if (sites.length) await d.reconcileNow(sites);
      d.log.info({ region: a.region, stage: a.stage, of: a.of, sites: sites.length }, 'grid recovered: handing a stage back');
      record({ region: a.region, action: 'restore', at_ms: at, commands: sites.length, detail: `stage ${a.stage} of ${a.of}` });
    } else {
      taken.delete(a.region);
      // whatever is left (a site added during the event) goes too
      for (const c of gridClaims(a.region)) await d.claims.release(c.id, GRID_ACTOR, 'grid restored');
      record({ region: a.region, action: 'restored', at_ms: at, hz: Number.isFinite(a.lowestHz) ? a.lowestHz : undefined, detail: Number.isFinite(a.lowestHz) ? `lowest reading ${a.lowestHz} Hz` : 'after a restart' });
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

  // Every replica's guard hears the readings (so a standby that takes over knows the phase);
  // only the leader acts, under its fence. A standby's actions are dropped: the leader took them.
  const leader = d.leader ?? ALWAYS_LEADING;
  let chain: Promise<void> = Promise.resolve();
  const run = (actions: GuardAction[]) => {
    if (!actions.length || !leader.leading()) return;
    for (const a of actions) chain = chain.then(() => (leader.leading() ? leader.fenced(() => act(a)) : undefined)).catch((err) => d.log.error({ err, action: a }, 'grid response failed'));
  };
  const timer = setInterval(() => run(guard.tick(now())), 250);
  timer.unref();

  return {
    /** a reading from the feed; the guard runs on the control plane's clock */
    onFrequency(region: string, hz: number): void {
      const at = now();
      let kept = readings.get(region);
      if (!kept) readings.set(region, (kept = []));
      kept.push({ at_ms: at, hz });
      if (kept.length > READINGS_KEPT) kept.splice(0, kept.length - READINGS_KEPT);
      run(guard.reading(region, hz, at));
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
    /**
     * An agent says its local trip fired. Its trip time is the agent's own (reading to sleep, one
     * clock); the power shed is what the tripped ASICs drew in their last samples, which the
     * registry still holds because their sleeping samples are not in yet.
     */
    onAgentTrip(siteId: string, fired: GridTripFired): void {
      let shed = 0;
      for (const id of fired.deviceIds) shed += d.registry.device(id)?.asic?.powerW ?? 0;
      const signal = Number(fired.signalTsMs);
      const applied = Number(fired.appliedAtMs);
      record({
        region: fired.region, action: 'agent_trip', at_ms: now(), hz: fired.hz, sites: [siteId],
        trip_ms: signal > 0 && applied >= signal ? applied - signal : undefined,
        devices: fired.deviceIds.length,
        shed_w: Math.round(shed),
      });
    },
    /** true while the region is under the grid response (its claims outrank every other) */
    holding: (region: string) => guard.holding(region),
    idle: () => chain,
    /** the guard, each region and the log; with readings: each region's last 10 min of them (GET /api/v1/grid, not the fleet summary said every second) */
    view(opts: { readings?: boolean } = {}) {
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
        /** each region's recent readings, oldest first (the grid-events page's timeline) */
        ...(opts.readings ? { readings: Object.fromEntries([...readings].map(([r, xs]) => [r, xs.map((x) => ({ at: new Date(x.at_ms).toISOString(), hz: x.hz }))])) } : {}),
      };
    },
    close(): Promise<void> {
      clearInterval(timer);
      return chain;
    },
  };
}

export type GridResponse = ReturnType<typeof createGridResponse>;
