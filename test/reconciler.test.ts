// The reconciler's shell (control-plane/claims/reconciler.ts) on its own: the real registry fed
// samples by hand, a clock the test moves, and an in-memory stand-in for the command bus's
// submit/get/watch (the bus itself, on PostgreSQL, is in test/reconciler.int.test.ts).
import { pino } from 'pino';
import { Registry as PromRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { createReconciler, type ReconcilerDeps } from '../control-plane/claims/reconciler.js';
import type { AsicSpec, Claim } from '../control-plane/claims/model.js';
import { resolve } from '../control-plane/claims/resolve.js';
import type { NewCommand } from '../control-plane/commands/bus.js';
import type { CommandRecord } from '../control-plane/commands/model.js';
import { Registry } from '../control-plane/registry/registry.js';
import type { DesiredState as DesiredStateMessage } from '../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { device } from './harness/grpc-agent.js';
import { asic } from './harness/samples.js';

const SITE = 'texas-1';
const IDS = ['asic-texas-1-00001', 'asic-texas-1-00002'];

function fakeBus() {
  const records = new Map<string, CommandRecord>();
  const listeners = new Set<(r: CommandRecord) => void>();
  let gate: Promise<void> | null = null;
  return {
    records,
    /** submits wait for this until it resolves */
    hold(p: Promise<void> | null) {
      gate = p;
    },
    /** as the bus does: stored once `after` is, and `beforeSend` right before they would go out */
    async submit(items: NewCommand[], opts: { after?: Promise<unknown> | null; beforeSend?: () => void } = {}): Promise<CommandRecord[]> {
      if (gate) await gate;
      if (opts.after) await opts.after;
      opts.beforeSend?.();
      return items.map((c) => {
        const r: CommandRecord = {
          id: c.id, siteId: c.siteId, payload: c.payload, state: 'pending', actor: c.actor, workloadId: null, createdAtMs: 0, deadlineMs: c.deadlineMs,
          sentAtMs: null, ackedAtMs: null, finishedAtMs: null, attempts: 0, reasonCode: null, message: null, devices: null, details: c.details ?? null,
        };
        records.set(r.id, r);
        return r;
      });
    },
    get: (id: string) => records.get(id),
    watch(l: (r: CommandRecord) => void) {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    finish(id: string, state: 'succeeded' | 'failed', reasonCode: string) {
      const r = records.get(id)!;
      Object.assign(r, { state, reasonCode });
      for (const l of listeners) l(r);
    },
  };
}

describe('reconciler', () => {
  let t = 1_000_000;
  let close: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await close?.();
  });

  const setup = (over: Partial<ReconcilerDeps> = {}) => {
    const registry = new Registry({ staleAfterMs: 3_600_000 });
    registry.addSite({ id: SITE, name: SITE, region: 'ercot', powerCapacityKw: 100 });
    registry.hello({ siteId: SITE, agentVersion: 't', agentSession: 's', hostname: '', devices: IDS.map((id) => device(id, 'asic')) }, t);
    const report = (state: MiningState) => {
      for (const id of IDS) registry.recordAsic(registry.device(id)!, { ...asic(id, t, 270, state === MiningState.MINING_STATE_SLEEPING ? 35 : 3645), miningState: state }, t);
      registry.sweep(t);
    };
    report(MiningState.MINING_STATE_MINING);
    const bus = fakeBus();
    const metrics = new PromRegistry();
    const sent: DesiredStateMessage[] = [];
    let connected = true;
    let claims: Claim[] = [];
    let desiredCalls = 0;
    const specs: AsicSpec[] = IDS.map((id) => ({ id, ratedPowerW: 3645, standbyW: 35, minPowerW: 1823, maxPowerW: 4009, jPerTh: 13.5 }));
    const rec = createReconciler({
      registry, bus, metrics, log: pino({ level: 'silent' }), now: () => t, intervalMs: 3_600_000, sites: () => [SITE],
      desiredOf: (site) => {
        desiredCalls += 1;
        return resolve(claims, { siteId: site, capacityKw: 0, gpuKw: 0, asics: specs }, t);
      },
      specsOf: () => specs, rampKwPerMin: () => 0, capacityKw: () => 0,
      sendDesired: (_s, m) => {
        if (connected) sent.push(m);
        return connected;
      },
      timings: { startMs: 60_000, stopMs: 10_000, retargetMs: 10_000, maxAttempts: 3, backoffBaseMs: 1_000 },
      ...over,
    });
    close = () => rec.close();
    const off = (id = 'grid-1'): Claim => ({ id, siteId: SITE, source: 'grid', deviceIds: [], want: { kind: 'mining', enabled: false, powerTargetW: null }, reason: 'under-frequency', actor: 'system:grid', createdAtMs: t, expiresAtMs: null });
    return {
      rec, bus, metrics, sent, report,
      setClaims: (c: Claim[]) => (claims = c),
      setConnected: (c: boolean) => (connected = c),
      desiredCalls: () => desiredCalls,
      off,
    };
  };

  it('reconcileNow right after a claim change joins the run that change started, and gets its commands (one run, not two)', async () => {
    const s = setup();
    await s.rec.poke(SITE);
    const before = s.desiredCalls();
    s.setClaims([s.off()]);
    void s.rec.claimsChanged(SITE);
    const commands = await s.rec.reconcileNow([SITE]);
    expect(s.desiredCalls() - before).toBe(1);
    expect(commands.map((c) => c.payload)).toEqual([{ type: 'set_mining', enabled: false, deviceIds: IDS, powerTargetW: null }]);
    // a poke that is not about claims (a command ended, telemetry) still runs again
    s.setClaims([]);
    await Promise.all([s.rec.poke(SITE), s.rec.poke(SITE)]);
    expect(s.desiredCalls() - before).toBe(3);
  });

  it('versions the desired state, strictly increasing, resends it at connect and keeps what the agent holds', async () => {
    const s = setup();
    await s.rec.poke(SITE);
    expect(s.sent.map((m) => m.version)).toEqual([t]);
    await s.rec.poke(SITE);
    expect(s.sent).toHaveLength(1); // unchanged: not sent again
    s.setClaims([s.off()]);
    s.setConnected(false);
    await s.rec.poke(SITE);
    expect(s.sent).toHaveLength(1);
    expect(s.rec.view(SITE)).toMatchObject({ desiredVersion: t + 1, desiredSentVersion: t });
    s.setConnected(true);
    s.rec.siteConnected(SITE);
    expect(s.sent.map((m) => m.version)).toEqual([t, t + 1]);
    expect(s.sent[1]!.asics).toEqual(IDS.map((deviceId) => ({ deviceId, mining: false, powerTargetW: 0, source: 'grid' })));
    s.rec.siteConnected(SITE);
    expect(s.sent.map((m) => m.version)).toEqual([t, t + 1, t + 1]); // every connect gets it again
    s.rec.desiredHeld(SITE, t + 1);
    s.rec.desiredHeld(SITE, t); // an older report changes nothing
    expect(s.rec.view(SITE)).toMatchObject({ desiredVersion: t + 1, desiredSentVersion: t + 1, desiredHeldVersion: t + 1 });
  });

  it('sends as system:reconciler with the claim in the details, holds while in flight, retries failures and marks the device divergent', async () => {
    const s = setup();
    s.setClaims([s.off()]);
    await s.rec.poke(SITE);
    const first = [...s.bus.records.values()];
    expect(first.map((r) => [r.actor, r.payload, r.details])).toEqual([
      ['system:reconciler', { type: 'set_mining', enabled: false, deviceIds: IDS, powerTargetW: null }, { source: 'grid', claim_id: 'grid-1', reason: 'under-frequency' }],
    ]);
    expect(first[0]!.deadlineMs).toBe(t + 60_000);
    await s.rec.poke(SITE);
    expect(s.bus.records.size).toBe(1);
    expect(s.rec.view(SITE).held).toEqual(IDS.map((deviceId) => ({ deviceId, why: 'in_flight' })));
    expect(s.rec.view(SITE).inFlight.map((c) => c.commandId)).toEqual([first[0]!.id]);

    // each failure is retried after the backoff; the third gives up
    for (let attempt = 1; attempt <= 3; attempt++) {
      const last = [...s.bus.records.values()].at(-1)!;
      s.bus.finish(last.id, 'failed', 'driver_error');
      t += 1_000 * 2 ** (attempt - 1);
      await s.rec.poke(SITE);
    }
    expect(s.bus.records.size).toBe(3);
    const v = s.rec.view(SITE);
    expect(v.divergent).toEqual(IDS.map((deviceId) => ({ deviceId, reason: 'command failed: driver_error (sent 3 times)' })));
    expect(await s.metrics.metrics()).toMatch(/hcp_reconciler_divergent_devices 2/);
    expect(await s.metrics.metrics()).toMatch(/hcp_reconciler_commands_total\{rule="grid"\} 3/);

    // the devices fall asleep after all: converged, progress forgotten, nothing divergent
    s.report(MiningState.MINING_STATE_SLEEPING);
    await s.rec.poke(SITE);
    expect(s.rec.view(SITE)).toMatchObject({ divergent: [], held: [], inFlight: [] });
    expect(await s.metrics.metrics()).toMatch(/hcp_reconciler_divergent_devices 0/);
  });

  it('a command finishing pokes its site; pokes during a run are coalesced into one more run', async () => {
    const s = setup();
    s.setClaims([s.off()]);
    let release!: () => void;
    s.bus.hold(new Promise<void>((r) => (release = r)));
    const a = s.rec.poke(SITE);
    const b = s.rec.poke(SITE);
    const c = s.rec.poke(SITE);
    expect(s.desiredCalls()).toBe(1);
    release();
    s.bus.hold(null);
    await Promise.all([a, b, c]);
    expect(s.desiredCalls()).toBe(2);
    expect(s.bus.records.size).toBe(1);
    // the result comes back: the reconciler runs on its own and, not converged, waits out the stop time
    const id = [...s.bus.records.keys()][0]!;
    s.bus.finish(id, 'succeeded', 'ok');
    await s.rec.poke(SITE); // joins the run the result started, or runs once more
    expect(s.desiredCalls()).toBeGreaterThanOrEqual(3);
    expect(s.rec.view(SITE).held).toEqual(IDS.map((deviceId) => ({ deviceId, why: 'backoff' })));
  });

  it('holds the commands and the desired state of claims whose write is under way; a failed write sends neither', async () => {
    let write: { promise: Promise<void>; resolve: () => void; reject: (e: Error) => void } | null = null;
    const pending = () => {
      let resolve!: () => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
      // the claims service awaits its own write (claims/service.ts setMany): a rejection before a
      // run asks for it (the run starts a turn after the change) is handled there
      promise.catch(() => {});
      return { promise, resolve, reject };
    };
    const afters: Array<Promise<unknown> | null | undefined> = [];
    const s = setup({ claimsDurable: () => write?.promise ?? null });
    const submit = s.bus.submit;
    s.bus.submit = (items, opts = {}) => {
      afters.push(opts.after);
      return submit(items, opts);
    };
    await s.rec.poke(SITE);
    expect(s.sent).toHaveLength(1);

    // the claim is in memory, its row is going in: the command is submitted with the write as its
    // `after`, and the desired state waits for it
    write = pending();
    s.setClaims([s.off()]);
    const run = s.rec.claimsChanged(SITE);
    // the run starts on the next turn, once the claims' write is on its way
    expect(afters).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(afters).toEqual([write.promise]);
    await new Promise((r) => setImmediate(r));
    expect(s.sent).toHaveLength(1);
    write.resolve();
    await run;
    expect(s.sent).toHaveLength(2);
    expect(s.sent[1]!.asics.every((a) => !a.mining)).toBe(true);

    // a write that fails (here, of the claim's end): the run fails, the changed desired state is
    // not pushed
    const errors = async () => (await s.metrics.getSingleMetric('hcp_reconciler_run_errors_total')!.get()).values[0]?.value ?? 0;
    const before = await errors();
    write = pending();
    s.setClaims([]);
    const failing = s.rec.claimsChanged(SITE);
    write.reject(new Error('the claims table is gone'));
    await failing;
    expect(await errors()).toBe(before + 1);
    expect(s.sent).toHaveLength(2);
  });
});
