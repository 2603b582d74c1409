// The economic engine at work: every interval, for each online site, it builds the engine's
// inputs from the price book, the registry's latest telemetry, the operator's controls and the
// grid state, calls decideSite (economics/engine.ts, pure), sends the resulting SetMining
// commands through the command path as `system:economics`, and records the decision with its
// explanation (economic_decisions, the audit log when it changes something) and the
// profitability of each device class (profitability_scores).
//
// It leaves alone: a site whose region is under the grid response (the grid owns its ASICs
// until the staged restore ends), an offline site, and a site whose previous economic commands
// are still in flight. A manual mining command by an operator (REST or gRPC) puts the site in
// manual mode; the engine then explains but does not act until an operator returns it to auto.
import type { Logger } from 'pino';
import { isKeyActor } from '../auth/roles.js';
import type { CommandBus } from '../commands/bus.js';
import { isFinal, type CommandRecord } from '../commands/model.js';
import type { MiningIntents } from '../commands/mining-intent.js';
import type { Operations } from '../commands/operations.js';
import type { AuditWriter } from '../db/audit-writer.js';
import type { Db } from '../db/client.js';
import { insertDecisions, insertProfitability, liveAllocatedGpus, type DecisionRow } from '../db/economics-store.js';
import { ASIC_MODEL_SPECS, isAsicModelId, type AsicModelId } from '../economics/asic-models.js';
import { decideSite, DEFAULT_ENGINE_CONFIG, type AsicInput, type EngineConfig, type SiteDecision } from '../economics/engine.js';
import { siteProfitability } from '../economics/profitability.js';
import type { GridResponse } from '../grid/grid-response.js';
import type { PriceBook } from '../market/price-book.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { SiteControls } from './site-controls.js';
import { MiningState } from '../../proto/gen/hcp/v1/telemetry.js';

export const ECONOMICS_ACTOR = 'system:economics';
// Stock Antminer firmware sets power only through its modes: stock or low power (75 %); the
// cgminer driver refuses anything else (agent/drivers/cgminer-driver.ts).
const STOCK_FIRMWARE_FRACTIONS = [0.75, 1] as const;

export interface EconomicDispatchDeps {
  db: Db;
  registry: Registry;
  book: PriceBook;
  ops: Operations;
  bus: CommandBus;
  intent: MiningIntents;
  grid: GridResponse;
  controls: SiteControls;
  audit: AuditWriter;
  metrics: Metrics;
  log: Logger;
  intervalMs: number;
  engine?: Partial<EngineConfig>;
  /** facility time zones, for schedules in local time */
  timezones: Map<string, string>;
  now?: () => number;
}

/** the model id the engine knows, from the name an agent reports ("Antminer S21 XP") */
export function asicModelOf(name: string): AsicModelId | null {
  if (isAsicModelId(name)) return name;
  const hit = Object.values(ASIC_MODEL_SPECS).find((m) => m.name.toLowerCase() === name.trim().toLowerCase());
  return hit?.id ?? null;
}

export function utcOffsetHours(timeZone: string, atMs: number): number {
  try {
    const part = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(new Date(atMs)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
    const m = /GMT([+-])(\d{2}):(\d{2})/.exec(part);
    return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) + Number(m[3]) / 60) : 0;
  } catch {
    return 0;
  }
}

const RUN_STATE: Partial<Record<MiningState, AsicInput['state']>> = {
  [MiningState.MINING_STATE_MINING]: 'mining',
  [MiningState.MINING_STATE_RAMPING]: 'starting',
  [MiningState.MINING_STATE_SLEEPING]: 'sleeping',
};

export function createEconomicDispatch(d: EconomicDispatchDeps) {
  const now = d.now ?? Date.now;
  const base: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, ...d.engine };
  const last = new Map<string, { decision: SiteDecision; commands: string[]; atMs: number; skipped: string | null }>();
  const inFlight = new Map<string, string[]>();
  let running: Promise<void> | null = null;

  // An operator's own mining command (made with a key) puts the site in manual mode (never the
  // engine's, the grid's or the scheduler's).
  const unwatch = d.bus.watch((r: CommandRecord) => {
    if (r.state !== 'pending' || r.attempts !== 0 || !isKeyActor(r.actor)) return;
    if (r.payload.type !== 'set_mining' && r.payload.type !== 'curtail') return;
    void d.controls.setMode(r.siteId, 'manual', r.actor, `manual mining command ${r.id}`).catch((err) => d.log.error({ err }, 'could not set manual mode'));
  });

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
      asics.push({ id: dev.id, model, state, powerTargetW: dev.asic.powerTargetW > 0 ? dev.asic.powerTargetW : null, lastChangeMs: d.intent.of(dev.id)?.atMs ?? null });
    }
    const gpus = devices.filter((g) => g.kind === 'gpu' && g.online && g.gpu);
    const gpusBusy = gpus.filter((g) => g.gpu!.workloadId).length;
    const gpuW = gpus.reduce((n, g) => n + g.gpu!.powerW, 0);
    // GPUs come off the cap first at what they draw or what is committed to them: busy in
    // telemetry, or allocated by the scheduler and about to be (it made headroom for them)
    const gpuKw = Math.max(gpuW / 1000, (Math.max(gpusBusy, allocated) * base.gpu.busyW) / 1000);
    const ctl = d.controls.get(siteId);
    const tz = d.timezones.get(siteId) ?? 'UTC';
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
        mode: ctl.mode,
        schedule: ctl.schedule,
        utcOffsetHours: utcOffsetHours(tz, nowMs),
        demandResponse: d.controls.demandResponse(siteId, nowMs).map((c) => ({ mw: c.mw, fromMs: c.fromMs, toMs: c.toMs })),
        gridEmergency: false,
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
    if (d.grid.holding(site.region)) return skip(`grid response holds region ${site.region}`);
    const pending = (inFlight.get(siteId) ?? []).filter((id) => {
      const r = d.bus.get(id);
      return r && !isFinal(r.state);
    });
    if (pending.length) return skip(`${pending.length} economic commands still in flight`);

    const { inputs, cgminer } = inputsFor(siteId, nowMs, allocated);
    const cfg = cgminer ? { ...base, powerFractions: [...STOCK_FIRMWARE_FRACTIONS] } : base;
    const decision = decideSite(inputs, cfg);
    const ids: string[] = [];
    for (const c of decision.commands) {
      const stock = c.deviceIds.length ? ASIC_MODEL_SPECS[inputs.asics.find((a) => a.id === c.deviceIds[0])!.model].ratedPowerW : 0;
      const target = c.enabled && c.powerTargetW > 0 && Math.abs(c.powerTargetW - stock) > 1 ? c.powerTargetW : null;
      const recs = await d.ops.setMining({
        site: siteId, enabled: c.enabled, deviceIds: c.deviceIds, powerTargetW: target, actor: ECONOMICS_ACTOR,
        deadlineS: Math.max(30, Math.ceil((3 * d.intervalMs) / 1000)),
      });
      ids.push(...recs.map((r) => r.id));
    }
    inFlight.set(siteId, ids);
    last.set(siteId, { decision, commands: ids, atMs: nowMs, skipped: null });
    d.metrics.economicDecisions.inc({ rule: decision.rule });
    const margin = decision.explanation.expectedUsdH?.margin ?? null;
    if (ids.length) {
      d.audit.write({
        actor: ECONOMICS_ACTOR, action: 'economics.decision', subject: siteId,
        details: { rule: decision.rule, summary: decision.explanation.summary, expected_margin_usd_h: margin, commands: ids, inputs: decision.explanation.inputs },
        timeMs: nowMs,
      });
      d.log.info({ site: siteId, rule: decision.rule, summary: decision.explanation.summary, commands: ids.length }, 'economic decision');
    }
    if (inputs.prices.btcUsd !== null && inputs.prices.powerUsdKwh !== null && inputs.prices.gpuSpotUsdH !== null) {
      const models = [...new Set(inputs.asics.map((a) => a.model))];
      await insertProfitability(d.db, siteProfitability(siteId, new Date(nowMs).toISOString(), {
        btcUsd: inputs.prices.btcUsd, powerUsdKwh: inputs.prices.powerUsdKwh, gpuSpotUsdH: inputs.prices.gpuSpotUsdH,
      }, models.length ? models : undefined));
    }
    return { timeMs: nowMs, siteId, rule: decision.rule, summary: decision.explanation.summary, expectedMarginUsdH: margin, explanation: decision.explanation, commands: ids };
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

  const tick = () => {
    if (running) return;
    running = runOnce()
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
        commands: l.commands,
        skipped_since: l.skipped,
      };
    },
    intervalMs: d.intervalMs,
    async close(): Promise<void> {
      clearInterval(timer);
      unwatch();
      await running;
    },
  };
}

export type EconomicDispatch = ReturnType<typeof createEconomicDispatch>;
