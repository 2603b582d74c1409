// The economic engine at work: every interval, for each online site, it builds the engine's
// inputs from the price book, the registry's latest telemetry and the site's demand-response
// commitments, calls decideSite (economics/engine.ts, pure), and states what it decided as the
// site's economics claims (one per group of ASICs with the same want), replacing its earlier
// ones when the decision changed. Economics is the lowest claim source: the grid, operators,
// demand response, the scheduler's headroom and schedules outrank it in the resolver
// (claims/resolve.ts), so it needs no special cases for them. It records every decision with its
// explanation (economic_decisions, the audit log when it changes something) and the
// profitability of each device class (profitability_scores).
import type { Logger } from 'pino';
import type { ClaimsService } from '../claims/service.js';
import type { Claim } from '../claims/model.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { insertDecisions, insertProfitability, liveAllocatedGpus, type DecisionRow } from '../db/economics-store.js';
import { ASIC_MODEL_SPECS, isAsicModelId, type AsicModelId } from '../economics/asic-models.js';
import { decideSite, DEFAULT_ENGINE_CONFIG, type AsicInput, type EngineConfig, type SiteDecision } from '../economics/engine.js';
import { siteProfitability } from '../economics/profitability.js';
import type { PriceBook } from '../market/price-book.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { SiteControls } from './site-controls.js';
import { ALWAYS_LEADING, type Leadership } from '../ha/lease.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';

export const ECONOMICS_ACTOR = 'system:economics';
// Stock Antminer firmware sets power only through its modes: stock or low power (75 %); the
// cgminer driver refuses anything else (agent/drivers/cgminer-driver.ts).
const STOCK_FIRMWARE_FRACTIONS = [0.75, 1] as const;

export interface EconomicDispatchDeps {
  db: Db;
  registry: Registry;
  book: PriceBook;
  claims: ClaimsService;
  controls: SiteControls;
  audit: AuditWriter;
  metrics: Metrics;
  log: Logger;
  intervalMs: number;
  engine?: Partial<EngineConfig>;
  now?: () => number;
  /** a singleton loop (ha/lease.ts): runs only while this replica leads; default: always */
  leader?: Pick<Leadership, 'leading' | 'fenced'>;
}

/** the model id the engine knows, from the name an agent reports ("Antminer S21 XP") */
export function asicModelOf(name: string): AsicModelId | null {
  if (isAsicModelId(name)) return name;
  const hit = Object.values(ASIC_MODEL_SPECS).find((m) => m.name.toLowerCase() === name.trim().toLowerCase());
  return hit?.id ?? null;
}

// An Intl.DateTimeFormat is costly to make (its locale data), and the schedule programs ask for
// every site's offset on every sweep: a fleet of 1,000 sites spent 6 s of a 100 s profile making
// formatters. So one formatter per time zone, and the answer kept per zone and minute (offsets
// change at a zone's transitions, which fall on whole minutes).
const formatters = new Map<string, Intl.DateTimeFormat>();
const offsets = new Map<string, number>();

export function utcOffsetHours(timeZone: string, atMs: number): number {
  const key = `${timeZone}@${Math.floor(atMs / 60_000)}`;
  const known = offsets.get(key);
  if (known !== undefined) return known;
  let hours = 0;
  try {
    let f = formatters.get(timeZone);
    if (!f) formatters.set(timeZone, (f = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' })));
    const part = f.formatToParts(new Date(atMs)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(part);
    hours = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) + Number(m[3]) / 60) : 0;
  } catch {
    hours = 0;
  }
  if (offsets.size >= 10_000) offsets.clear();
  offsets.set(key, hours);
  return hours;
}

const RUN_STATE: Partial<Record<MiningState, AsicInput['state']>> = {
  [MiningState.MINING_STATE_MINING]: 'mining',
  [MiningState.MINING_STATE_RAMPING]: 'starting',
  [MiningState.MINING_STATE_SLEEPING]: 'sleeping',
};

export function createEconomicDispatch(d: EconomicDispatchDeps) {
  const now = d.now ?? Date.now;
  const base: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, ...d.engine };
  const last = new Map<string, { decision: SiteDecision; claims: string[]; atMs: number; skipped: string | null }>();
  // when economics last switched each ASIC's want on or off (minimum on/off times count from it)
  const switchedAt = new Map<string, { mine: boolean; atMs: number }>();
  let running: Promise<void> | null = null;

  function inputsFor(siteId: string, nowMs: number, allocated: number) {
    const site = d.registry.site(siteId)!;
    const devices = d.registry.devices({ site: siteId });
    const asics: AsicInput[] = [];
    let unknownModel = 0;
    let cgminer = false;
    for (const dev of devices) {
      if (dev.kind !== 'asic' || !dev.online || !dev.asic) continue;
      const model = asicModelOf(dev.model);
      const state = RUN_STATE[dev.asic.miningState as MiningState];
      if (!model || !state) {
        unknownModel++;
        continue;
      }
      if (dev.driver === 'cgminer') cgminer = true;
      // Economics reasons from its own last want where it has one, not from what another claim
      // (the grid, an operator) made the ASIC do meanwhile: otherwise a grid curtailment would
      // look like economics' own "off" and hysteresis would keep it there after the grid let go.
      const prev = switchedAt.get(dev.id);
      const own: AsicInput['state'] = prev ? (prev.mine ? (state === 'starting' ? 'starting' : 'mining') : 'sleeping') : state;
      asics.push({ id: dev.id, model, state: own, powerTargetW: dev.asic.powerTargetW > 0 ? dev.asic.powerTargetW : null, lastChangeMs: prev?.atMs ?? null });
    }
    const gpus = devices.filter((g) => g.kind === 'gpu' && g.online && g.gpu);
    const gpusBusy = gpus.filter((g) => g.gpu!.workloadId).length;
    const gpuW = gpus.reduce((n, g) => n + g.gpu!.powerW, 0);
    // GPUs come off the cap first at what they draw or what is committed to them: busy in
    // telemetry, or allocated by the scheduler and about to be (it made headroom for them)
    const gpuKw = Math.max(gpuW / 1000, (Math.max(gpusBusy, allocated) * base.gpu.busyW) / 1000);
    return {
      site,
      cgminer,
      unknownModel,
      inputs: {
        siteId,
        nowMs,
        prices: { btcUsd: d.book.btcUsd?.price ?? null, powerUsdKwh: d.book.takePowerPeak(siteId)?.price ?? null, gpuSpotUsdH: d.book.gpuSpot?.price ?? null },
        capKw: site.powerCapacityKw,
        gpuKw,
        gpusBusy,
        asics,
        demandResponse: d.controls.demandResponse(siteId, nowMs).map((c) => ({ mw: c.mw, fromMs: c.fromMs, toMs: c.toMs })),
      },
    };
  }

  async function decideOne(siteId: string, nowMs: number, allocated: number): Promise<DecisionRow | null> {
    const site = d.registry.site(siteId);
    if (!site) return null;
    const skip = (why: string) => {
      const prev = last.get(siteId);
      if (prev) prev.skipped = why;
      return null;
    };
    if (!site.online) return skip('site offline');

    const { inputs, cgminer } = inputsFor(siteId, nowMs, allocated);
    const cfg = cgminer ? { ...base, powerFractions: [...STOCK_FIRMWARE_FRACTIONS] } : base;
    const decision = decideSite(inputs, cfg);
    const ids = await stateClaims(siteId, decision, inputs.asics, nowMs);
    last.set(siteId, { decision, claims: ids.changed ? ids.claims : (last.get(siteId)?.claims ?? ids.claims), atMs: nowMs, skipped: null });
    d.metrics.economicDecisions.inc({ rule: decision.rule });
    const margin = decision.explanation.expectedUsdH?.margin ?? null;
    if (ids.changed) {
      d.audit.write({
        actor: ECONOMICS_ACTOR, action: 'economics.decision', subject: siteId,
        details: { rule: decision.rule, summary: decision.explanation.summary, expected_margin_usd_h: margin, claims: ids.claims, inputs: decision.explanation.inputs },
        timeMs: nowMs,
      });
      d.log.info({ site: siteId, rule: decision.rule, summary: decision.explanation.summary, claims: ids.claims.length }, 'economic decision');
    }
    if (inputs.prices.btcUsd !== null && inputs.prices.powerUsdKwh !== null && inputs.prices.gpuSpotUsdH !== null) {
      const models = [...new Set(inputs.asics.map((a) => a.model))];
      await insertProfitability(d.db, siteProfitability(siteId, new Date(nowMs).toISOString(), {
        btcUsd: inputs.prices.btcUsd, powerUsdKwh: inputs.prices.powerUsdKwh, gpuSpotUsdH: inputs.prices.gpuSpotUsdH,
      }, models.length ? models : undefined));
    }
    return { timeMs: nowMs, siteId, rule: decision.rule, summary: decision.explanation.summary, expectedMarginUsdH: margin, explanation: decision.explanation, commands: ids.changed ? ids.claims : [] };
  }

  /**
   * The decision as economics' claims: one per (mine, target) group. Unchanged groups keep their
   * claims; a changed decision replaces them all. Returns the live economics claim ids.
   */
  async function stateClaims(siteId: string, decision: SiteDecision, asics: readonly AsicInput[], nowMs: number): Promise<{ claims: string[]; changed: boolean }> {
    // Without prices economics has no opinion: its claims go, and the next claim down (or the
    // default, mining) stands.
    if (decision.rule === 'no_power_price' || decision.rule === 'no_btc_price') {
      const mine = d.claims.list(siteId).filter((c) => c.source === 'economics');
      for (const c of mine) await d.claims.release(c.id, ECONOMICS_ACTOR, `${decision.rule}: economics abstains`);
      for (const a of asics) switchedAt.delete(a.id);
      return { claims: [], changed: mine.length > 0 };
    }
    const stock = new Map(asics.map((a) => [a.id, ASIC_MODEL_SPECS[a.model].ratedPowerW]));
    const groups = new Map<string, { enabled: boolean; powerTargetW: number | null; deviceIds: string[] }>();
    for (const a of decision.asics) {
      const target = a.mine && Math.abs(a.powerTargetW - (stock.get(a.id) ?? 0)) > 1 ? a.powerTargetW : null;
      const key = `${a.mine}/${target}`;
      const g = groups.get(key) ?? { enabled: a.mine, powerTargetW: target, deviceIds: [] };
      g.deviceIds.push(a.id);
      groups.set(key, g);
      const prev = switchedAt.get(a.id);
      if (!prev || prev.mine !== a.mine) switchedAt.set(a.id, { mine: a.mine, atMs: prev ? nowMs : 0 });
    }
    const mine = d.claims.list(siteId).filter((c) => c.source === 'economics');

    const keyOf = (c: Pick<Claim, 'want' | 'deviceIds'>) => c.want.kind === 'mining' ? `${c.want.enabled}/${c.want.powerTargetW}/${[...c.deviceIds].sort().join(',')}` : 'cap';
    const want = [...groups.values()].map((g) => ({ want: { kind: 'mining' as const, enabled: g.enabled, powerTargetW: g.powerTargetW }, deviceIds: g.deviceIds.sort() }));
    const same = mine.length === want.length && new Set(mine.map(keyOf)).size === want.length && want.every((w) => mine.some((c) => keyOf(c) === keyOf(w)));
    if (same || want.length === 0) return { claims: mine.map((c) => c.id), changed: false };
    const made = await d.claims.setMany(want.map((w) => ({
      siteId, source: 'economics' as const, deviceIds: w.deviceIds, want: w.want, actor: ECONOMICS_ACTOR, expiresAtMs: null,
      reason: decision.explanation.summary,
    })));
    const kept = new Set(made.map((c) => c.id));
    for (const c of mine) if (!kept.has(c.id) && d.claims.get(c.id)) await d.claims.release(c.id, ECONOMICS_ACTOR, 'replaced by a new decision');
    return { claims: made.map((c) => c.id), changed: true };
  }

  async function runOnce(): Promise<void> {
    const nowMs = now();
    const rows: DecisionRow[] = [];
    const allocated = await liveAllocatedGpus(d.db);
    for (const s of d.registry.sites()) {
      try {
        const r = await decideOne(s.id, nowMs, allocated.get(s.id) ?? 0);
        if (r) rows.push(r);
      } catch (err) {
        d.log.error({ err, site: s.id }, 'economic decision failed');
      }
    }
    await insertDecisions(d.db, rows);
  }

  const leader = d.leader ?? ALWAYS_LEADING;
  const tick = () => {
    if (running || !leader.leading()) return;
    running = leader.fenced(runOnce)
      .catch((err) => d.log.error({ err }, 'economic interval failed'))
      .finally(() => {
        running = null;
      });
  };
  const timer = setInterval(tick, d.intervalMs);
  timer.unref();

  return {
    /** one interval now (tests, and after an operator changes controls) */
    async decideNow(): Promise<void> {
      while (running) await running;
      tick();
      await running;
    },
    lastDecision(siteId: string) {
      const l = last.get(siteId);
      if (!l) return null;
      return {
        at: new Date(l.atMs).toISOString(),
        rule: l.decision.rule,
        summary: l.decision.explanation.summary,
        expected_usd_h: l.decision.explanation.expectedUsdH,
        explanation: l.decision.explanation,
        claims: l.claims,
        skipped_since: l.skipped,
      };
    },
    intervalMs: d.intervalMs,
    /** the engine's configuration (a cgminer site narrows its power targets, nothing else) */
    engine: base as Readonly<EngineConfig>,
    async close(): Promise<void> {
      clearInterval(timer);
      await running;
    },
  };
}

export type EconomicDispatch = ReturnType<typeof createEconomicDispatch>;
