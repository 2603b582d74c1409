// The control plane survives its database (issue 12, "Bad input"), as a real process on a
// PostgreSQL cluster of this test's own (never the shared one, which other sessions use):
// 1. started before its database exists, it keeps retrying: /health 200, /ready 503, no exit;
//    the cluster starts and the full API comes up on the same port;
// 2. every one of its connections terminated mid-statement (pg_terminate_backend while its
//    statements wait on a lock this test holds, a workload cancel's transaction among them): the process stays up,
//    REST answers 503 or 200, never a 500, and answers 200 again;
// 3. the cluster stopped (pg_ctl stop -m immediate): a REST read needing the database is 503
//    database_unavailable (latency printed), /ready is false; the cluster started again: /ready
//    true and 200s, without restarting the control plane;
// and through all of it a site's telemetry keeps landing: every batch it published is stored.
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient, TEST_ADMIN_KEY } from './harness/auth.js';
import { createThrowawayCluster, type ThrowawayCluster } from './harness/postgres.js';
import { startTs, type Proc } from './harness/processes.js';
import { startSteadySite, type SteadySite } from './harness/steady-site.js';
import { waitFor } from './harness/wait-for.js';

const ADMIN_APP = 'db-outage-test';

describe('database outages: the control plane as a process on a throwaway cluster', () => {
  let cluster: ThrowawayCluster;
  let cp: Proc | undefined;
  let admin: postgres.Sql;
  let steady: SteadySite | undefined;
  let http = '';
  let grpc = '';
  let mqtt = '';
  const dbUrl = () => cluster.adminUrl;
  const errorLines = () => (cp?.lines ?? []).filter((l) => Number(l.level) >= 50).map((l) => JSON.stringify(l).slice(0, 400));
  const submit = { customer_id: 'cust-001', workload_type: 'ai_inference_batch', priority: 5, requirements: { gpu_type: 'H100', gpu_count: 1 } };

  beforeAll(async () => {
    cluster = await createThrowawayCluster({ start: false });
    admin = postgres(dbUrl(), { max: 2, onnotice: () => {}, connection: { application_name: ADMIN_APP } });
  });
  afterAll(async () => {
    await steady?.close();
    const exit = await cp?.kill('SIGTERM');
    await admin?.end({ timeout: 2 });
    await cluster?.destroy();
    // it shuts down cleanly on SIGTERM after all of it
    expect(exit?.code, cp?.output()).toBe(0);
  });

  it('waits for a database that is not there at start: /health 200, /ready 503, no exit; then starts on the same port', async () => {
    cp = startTs('control-plane', 'control-plane/main.ts', [], {
      DATABASE_URL: dbUrl(), HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0', HCP_HEARTBEAT_MS: '500', HCP_STALE_AFTER_MS: '3000',
      HCP_ADMIN_KEY: TEST_ADMIN_KEY,
    });
    const waiting = await cp.waitForLog((l) => l.msg === 'waiting for the database: /health answers, /ready is false', 'waiting for the database');
    const base = waiting.http as string;
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    const ready = await fetch(`${base}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'not_ready', checks: { database: false } });
    const read = await apiClient(base).get('/api/v1/workloads');
    expect(read.status).toBe(503);
    expect(await read.json()).toMatchObject({ error: { reason: 'database_unavailable' } });
    // retried with backoff (0.5, 1, 2 s …), each attempt logged, and still running
    await cp.waitForLog((l) => l.msg === 'database unavailable at start; retrying' && Number(l.attempt) >= 3, 'a third attempt');
    expect(cp.child.exitCode).toBeNull();

    await cluster.start();
    const up = await cp.waitForLog((l) => l.msg === 'control plane listening', 'listening once the database answers', 60_000);
    ({ http, grpc, mqtt } = up as unknown as { http: string; grpc: string; mqtt: string });
    expect(http).toBe(base);
    await waitFor(async () => (await fetch(`${http}/ready`)).status === 200, { message: '/ready 200', timeoutMs: 10_000 });
    expect((await apiClient(http).get('/api/v1/workloads')).status).toBe(200);
  });

  it('every connection terminated mid-statement: the process stays up, REST answers 503 or 200 (never 500), then 200', async () => {
    steady = await startSteadySite({ http, grpc, mqtt });
    const api = apiClient(http);
    const statuses = new Map<number, number>();
    let terminated = 0;
    for (let round = 0; round < 4; round++) {
      // Statements wait on a lock this test holds, so the terminations find them mid-statement:
      // reads, and submits inside their transactions.
      // a pending workload to cancel under the lock: a cancel is a transaction (workload-store.ts transitionWorkload)
      // the first statement on a pooled connection the last round's terminations ended can still
      // meet it closed (a 503, counted below); the one after it is served
      let made: Response | undefined;
      await waitFor(async () => {
        made = await api.post('/api/v1/workloads', submit);
        if (made.status !== 201) statuses.set(made.status, (statuses.get(made.status) ?? 0) + 1);
        return made.status === 201;
      }, { message: 'a submit served after the last round', timeoutMs: 10_000 });
      const { id } = (await made!.json()) as { id: string };
      const lock = await admin.reserve();
      await lock`BEGIN`;
      await lock`LOCK TABLE workloads IN ACCESS EXCLUSIVE MODE`;
      const load = Promise.all(
        [
          ...Array.from({ length: 3 }, () => api.get('/api/v1/workloads?limit=50')),
          ...Array.from({ length: 2 }, () => api.post('/api/v1/workloads', submit)),
          api.post(`/api/v1/workloads/${id}/cancel`),
        ].map((p) =>
          p.then(async (r) => {
            statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
            await r.text();
          }),
        ),
      );
      await waitFor(async () => (await admin`SELECT 1 FROM pg_stat_activity WHERE application_name <> ${ADMIN_APP} AND wait_event_type = 'Lock'`).length >= 2, {
        message: 'control-plane statements waiting on the lock',
        timeoutMs: 10_000,
      });
      const [k] = await admin<{ n: number }[]>`
        SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend' AND application_name <> ${ADMIN_APP}`;
      terminated += k?.n ?? 0;
      await lock`ROLLBACK`;
      lock.release();
      await load;
      expect(cp!.child.exitCode).toBeNull();
      // both pools back (REST's reads and the writes' main pool each have their circuit): /ready covers both
      await waitFor(async () => (await fetch(`${http}/ready`)).status === 200 && (await api.get('/api/v1/workloads?limit=1')).status === 200, { message: 'REST 200 again', timeoutMs: 10_000 });
    }
    console.log(`db-outage: ${terminated} backends terminated over 4 rounds; REST statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect(terminated).toBeGreaterThanOrEqual(8);
    expect([...statuses.keys()].every((s) => s === 200 || s === 201 || s === 503)).toBe(true);
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(cp!.child.exitCode).toBeNull();
  });

  it('the cluster stopped: REST 503 database_unavailable and /ready false; started again: /ready true and 200s, same process', async () => {
    const api = apiClient(http);
    // the site's telemetry, published through the terminations above: every batch stored. The
    // steady site keeps no spool, so what the control plane cannot take while the database is
    // stopped is not sent again: that case is an agent's, in test/chaos/db-outage.test.ts.
    const { batches } = await steady!.stopAndVerify(dbUrl(), errorLines);
    console.log(`db-outage: all ${batches} telemetry batches of ${steady!.siteId} stored`);
    await cluster.stop();
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const r = await api.get('/api/v1/workloads?limit=10');
      latencies.push(Math.round(performance.now() - t0));
      expect(r.status).toBe(503);
      expect(await r.json()).toMatchObject({ error: { code: 'unavailable', reason: 'database_unavailable' } });
    }
    console.log(`db-outage: REST reads with the database stopped answered 503 in ${latencies.join(', ')} ms`);
    const ready = await fetch(`${http}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ checks: { database: false } });
    expect(cp!.child.exitCode).toBeNull();

    await cluster.start();
    const t0 = performance.now();
    await waitFor(async () => (await fetch(`${http}/ready`)).status === 200, { message: '/ready 200 after the restart', timeoutMs: 20_000, intervalMs: 100 });
    console.log(`db-outage: /ready true ${Math.round(performance.now() - t0)} ms after the cluster took connections again`);
    expect((await api.get('/api/v1/workloads?limit=10')).status).toBe(200);
    const logged = cp!.lines.length;
    const posted = await api.post('/api/v1/workloads', submit);
    // should this fail, the body and what the control plane logged since say which circuit or
    // statement refused it (once in CI, 503 right after /ready said true; not reproduced since)
    const why = posted.status === 201 ? null : { body: await posted.text(), log: cp!.lines.slice(logged - 20).filter((l) => Number(l.level) >= 40).map((l) => JSON.stringify(l).slice(0, 600)) };
    expect({ status: posted.status, why }).toEqual({ status: 201, why: null });

    expect(cp!.child.exitCode).toBeNull();
  });
});
