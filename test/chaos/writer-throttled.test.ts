// Chaos 4 (issue 13, "Done when"): the database takes no telemetry writes for a while (a session
// of this test holds SHARE locks on both telemetry tables, so every flush waits on its INSERT)
// while a steady fleet publishes. Intake must slow, not lose:
// - the writer's buffer stays within its bound (HCP_INGEST_MAX_BUFFER_BYTES, small here so it
//   fills in a fraction of a second) and what does not fit is refused (`backpressure`);
// - nothing is acknowledged, so the agents keep their batches in their spools and send them
//   again (the tap sees the re-sends);
// - once the locks go, every sample the agents sent is stored exactly once.
// Real processes: Mosquitto, the control plane and the agents (test/chaos/harness.ts), on a
// database of this file's own on the shared PostgreSQL.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMosquitto, type Mosquitto } from '../harness/mosquitto.js';
import { usePgDatabase } from '../harness/pg.js';
import { lockHolder } from '../harness/lock-holder.js';
import { waitFor, within } from '../harness/wait-for.js';
import {
  chaosScale, chaosSites, checkRows, hold, metricOf, reportChaos, settleRows, siteCredential, startAgent, startChaosControlPlane, startTap,
  type AgentHandle, type ControlPlaneHandle, type TelemetryTap,
} from './harness.js';

const scale = chaosScale();
const SITES = chaosSites(scale.agents);
const INTERVAL_MS = 250;
const DEVICES = Math.ceil(scale.dbSamplesPerS / (SITES.length * (1000 / INTERVAL_MS)));
const GPUS = Math.round(DEVICES / 5);
const ASICS = DEVICES - GPUS;
/** small, so a few hundred ms of intake fill it */
const MAX_BUFFER_BYTES = 256 * 1024;
/** the agents re-send what is not committed this long after its send */
const RESEND_AFTER_MS = 3000;
const THROTTLE_S = scale.name === 'full' ? 60 : 12;

describe('chaos: the telemetry writer is throttled by a lock', () => {
  const pg = usePgDatabase('hcp_chaos_throttle');
  let broker: Mosquitto;
  let tap: TelemetryTap;
  let cp: ControlPlaneHandle;
  const agents: AgentHandle[] = [];

  beforeAll(async () => {
    broker = await startMosquitto();
    tap = await startTap(broker, 'chaos-tap-throttle');
    cp = await startChaosControlPlane({
      databaseUrl: pg.url, broker, name: 'cp-throttle', env: { HCP_INGEST_MAX_BUFFER_BYTES: String(MAX_BUFFER_BYTES) },
    });
    for (const site of SITES) {
      const token = await siteCredential(cp.http, broker, site);
      agents.push(await startAgent({
        site, token, grpc: cp.grpc, broker, gpus: GPUS, asics: ASICS, sampleIntervalMs: INTERVAL_MS, args: ['--resend-after-ms', String(RESEND_AFTER_MS)],
      }));
    }
  }, 120_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await cp?.kill9();
    await tap?.close();
    await broker?.close();
  });

  it('refuses what does not fit while writes wait, keeps the buffer bounded, and stores every sample once the lock goes', async () => {
    const metrics = `${cp.http}/metrics`;
    const sql = postgres(pg.url, { max: 2, onnotice: () => {} });
    const rows = async () => Number((await within(sql`SELECT (SELECT count(*) FROM asic_telemetry) + (SELECT count(*) FROM gpu_telemetry) AS n`, 20_000, 'count the stored rows'))[0]!.n);
    try {
      await waitFor(async () => (await sql`SELECT DISTINCT site_id FROM asic_telemetry`).length === SITES.length, {
        timeoutMs: 60_000, intervalMs: 500, message: 'rows from every site before the throttle',
      });
      const refusedBefore = await metricOf(metrics, 'hcp_ingest_rejected_total', '{reason="backpressure"}');
      const resentBefore = tap.repeats();

      // the throttle: SHARE conflicts with the INSERTs' ROW EXCLUSIVE, reads still go on. In the
      // order a flush writes them (telemetry-writer.ts: GPUs, then ASICs): the other order
      // deadlocked with a flush between its two COPYs, and PostgreSQL ended the LOCK.
      const holder = lockHolder(pg.url);
      let rowsAtLock = 0;
      let bufferedMax = 0;
      try {
        await holder.lock('LOCK TABLE gpu_telemetry, asic_telemetry IN SHARE MODE');
        const started = Date.now();
        await waitFor(async () => (await sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND (query LIKE 'COPY %_telemetry (%' OR query LIKE '%INSERT INTO %_telemetry (%')`).length > 0, {
          timeoutMs: 10_000, message: 'a flush waits on the lock',
        });
        rowsAtLock = await rows();
        await waitFor(async () => (await metricOf(metrics, 'hcp_ingest_rejected_total', '{reason="backpressure"}')) > refusedBefore, {
          timeoutMs: 10_000, message: 'intake refuses what the full buffer cannot hold',
        });
        while (Date.now() - started < THROTTLE_S * 1000) {
          bufferedMax = Math.max(bufferedMax, await metricOf(metrics, 'hcp_ingest_buffered_bytes'));
          await hold(0.5);
        }
        // nothing landed meanwhile, so nothing could be acknowledged
        expect(await rows()).toBe(rowsAtLock);
      } finally {
        // rolls back (the lock goes) and closes the session
        await holder.end();
      }
      const released = Date.now();
      const atRelease = await within(checkRows(pg.url, tap), 60_000, 'the rows stored at release');
      const check = await settleRows(pg.url, tap, 150_000);
      const refused = (await metricOf(metrics, 'hcp_ingest_rejected_total', '{reason="backpressure"}')) - refusedBefore;
      const resent = tap.repeats() - resentBefore;
      reportChaos('writer-throttled', {
        rows_expected: check.rows_expected, rows_present: check.rows_present, rows_duplicated: check.rows_duplicated,
        commands_lost: 0, commands_duplicated: 0, failover_s: null,
        rows_missing: check.rows_missing, batches_missing: check.batches_missing, gaps: check.gaps,
        samples_per_s: SITES.length * DEVICES * (1000 / INTERVAL_MS), throttle_s: THROTTLE_S, refused_batches: refused, batches_resent: resent,
        buffered_bytes_max: bufferedMax, max_buffer_bytes: MAX_BUFFER_BYTES, rows_pending_at_release: atRelease.rows_expected - atRelease.rows_present,
        recovered_s: Math.round((Date.now() - released) / 100) / 10, scale: scale.name,
      });

      // intake slowed: refused, and the agents sent from their spools again
      expect(refused).toBeGreaterThan(0);
      expect(resent).toBeGreaterThan(0);
      // the buffer held to its bound (an empty buffer takes one batch of any size; one batch is far smaller)
      expect(bufferedMax).toBeGreaterThan(0);
      expect(bufferedMax).toBeLessThanOrEqual(MAX_BUFFER_BYTES);
      // and every sample landed once
      expect(check.rows_expected).toBeGreaterThan(rowsAtLock);
      expect(check.batches_missing).toBe(0);
      expect(check.rows_duplicated).toBe(0);
      expect(check.rows_present).toBe(check.rows_expected);
    } catch (err) {
      // a hang or a miss says where: what the sessions wait on, and what the control plane last logged
      await diagnose(pg.url, cp).catch((e: unknown) => console.error('diagnose failed', e));
      throw err;
    } finally {
      await sql.end({ timeout: 5 });
    }
  // its waits add up to about 4 minutes at most (60 s for rows, the throttle, 10 + 10 s, 150 s to settle)
  }, 300_000 + THROTTLE_S * 1000);
});

async function diagnose(url: string, cp: ControlPlaneHandle): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const sessions = await within(sql`SELECT pid, state, wait_event_type, wait_event, now() - query_start AS for, left(query, 120) AS query
      FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`, 10_000, 'pg_stat_activity');
    console.error('sessions:', JSON.stringify(sessions, null, 1));
  } finally {
    await sql.end({ timeout: 5 });
  }
  console.error(`control plane (${cp.proc().child.exitCode === null ? 'running' : `exited ${cp.proc().child.exitCode}`}), last lines:\n${cp.proc().output().split('\n').slice(-60).join('\n')}`);
}
