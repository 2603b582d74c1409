// Chaos 1 (issue 12): the broker goes away for an outage (60 s with `npm run chaos`, 15 s in
// `npm test`; HCP_CHAOS_OUTAGE_S). Halfway through, the control plane is killed -9 and started
// again, with the broker still away; three quarters in, one agent is restarted. After the broker
// is back, every sample every agent made is stored exactly once.
//
// It holds because each agent appends every batch to its on-disk spool before sending it, keeps it
// until the control plane reports it committed, and after its restart goes on with the same
// stream. The ingest ledger makes a re-sent batch a no-op. Real processes throughout: Mosquitto,
// the control plane and the agents (test/chaos/harness.ts).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { describePg } from '../harness/pg.js';
import { waitFor } from '../harness/wait-for.js';
import {
  chaosScale, chaosSites, hold, reportChaos, settleRows, siteCredential, startAgent, startChaosControlPlane, startTap,
  type AgentHandle, type ControlPlaneHandle, type TelemetryTap,
} from './harness.js';
import postgres from 'postgres';

const scale = chaosScale();
const SITES = chaosSites(scale.agents);

describePg('chaos: broker outage with a control-plane kill -9 and an agent restart', (pg) => {
  let broker: Mosquitto;
  let tap: TelemetryTap;
  let cp: ControlPlaneHandle;
  const agents: AgentHandle[] = [];

  beforeAll(async () => {
    broker = await startMosquitto();
    tap = await startTap(broker);
    cp = await startChaosControlPlane({ databaseUrl: pg.url, broker });
    for (const site of SITES) {
      const token = await siteCredential(cp.http, broker, site);
      agents.push(await startAgent({ site, token, grpc: cp.grpc, broker, gpus: 3, asics: 10, sampleIntervalMs: 500 }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await cp?.kill9();
    await tap?.close();
    await broker?.close();
  });

  it('stores every sample exactly once', async () => {
    const sql = postgres(pg.url, { max: 1, onnotice: () => {} });
    try {
      await waitFor(async () => {
        const rows = await sql`SELECT DISTINCT site_id FROM asic_telemetry`;
        return rows.length === SITES.length;
      }, { timeoutMs: 60_000, intervalMs: 500, message: 'rows from every site before the outage' });
    } finally {
      await sql.end();
    }

    await broker.stop();
    const outageStart = Date.now();
    await hold(scale.outageS / 2);
    await cp.kill9();
    // started again while the broker is still away: it serves and waits for the broker
    const cpBack = cp.start();
    await hold(scale.outageS / 4);
    const restarted = agents.at(-1)!;
    await restarted.stop();
    await restarted.start();
    await hold(Math.max(0, scale.outageS - (Date.now() - outageStart) / 1000));
    const seenBefore = tap.batches();
    await broker.start();
    const brokerBack = Date.now();
    await cpBack;
    // live telemetry after the outage belongs in the check too
    await waitFor(() => tap.batches() > seenBefore + SITES.length * 4, { timeoutMs: 30_000, message: 'the tap sees telemetry again' });
    await hold(3);

    const check = await settleRows(pg.url, tap, 60_000 + scale.outageS * 1000);
    const streams = Object.fromEntries(SITES.map((s) => [s, tap.streamsOf(s).length]));
    reportChaos('broker-outage', {
      rows_expected: check.rows_expected, rows_present: check.rows_present, rows_duplicated: check.rows_duplicated,
      commands_lost: 0, commands_duplicated: 0, failover_s: null,
      rows_missing: check.rows_missing, batches_missing: check.batches_missing, gaps: check.gaps, batches_seen: tap.batches(), batches_resent: tap.repeats(),
      streams_per_site: streams, outage_s: scale.outageS, recovered_s: Math.round((Date.now() - brokerBack) / 100) / 10, scale: scale.name,
    });

    expect(check.rows_expected).toBeGreaterThan(0);
    // the restarted agent went on with its spool's stream: a batch it had not sent is still its to send
    expect(streams).toEqual(Object.fromEntries(SITES.map((s) => [s, 1])));
    expect(check.batches_missing).toBe(0);
    expect(check.rows_duplicated).toBe(0);
    expect(check.rows_present).toBe(check.rows_expected);
  }, scale.testTimeoutMs);
});
