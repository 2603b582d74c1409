// MQTT fuzzing against a running control plane (a child process on the real PostgreSQL, its
// embedded broker on a random loopback port): logins of the fuzz site's agent, of a feed, of a
// reader, anonymous (allowed on loopback) and bad ones; random client ids; one publish per case to
// any topic, at any QoS, retained or not, with random bytes, extreme TelemetryBatches or odd JSON;
// random subscriptions; raw bytes on the socket. What must hold for every case:
//   - the process lives and logs nothing fatal, unhandled, or at error level;
//   - a refused login moves hcp_broker_refused_connections_total;
//   - a publish is counted as a drop (the sum of hcp_ingest_rejected_total,
//     hcp_broker_rejected_publishes_total, hcp_feed_rejected_total and the refused-connection,
//     refused-subscription and oversized-packet counters moves), or cuts its connection at the
//     packet limit (counted too), or is accepted: a feed reading moves hcp_feed_messages_total, a
//     status is one proto/topics.ts decodes, and every sample of a telemetry batch lands in
//     PostgreSQL. Nothing is accepted silently and nothing bad is taken;
//   - a refused subscription is counted, once per filter;
//   - the steady site's telemetry kept landing throughout.
// Each publish is followed by a sentinel from the same client that the ingest path counts: once
// the sentinel is counted, the publish before it has been handled (one client's messages reach
// the control plane's subscriber in order).
import { connect as tcpConnect } from 'node:net';
import fc from 'fast-check';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeFrequency, decodePrice, parseMarketTopic } from '../proto/market-topics.js';
import { decodeStatus } from '../proto/topics.js';
import { trickyString } from './harness/fuzz-arbitraries.js';
import { mqttCase, payloadBytes, TOPICS, type Login, type MqttCase } from './harness/fuzz-mqtt-messages.js';
import { clip, fuzzParams, fuzzTestTimeout } from './harness/fuzz-runs.js';
import { FUZZ_SITE, logProblems, startFuzzTarget, type FuzzTarget, type Metrics } from './harness/fuzz-target.js';
import { describePg } from './harness/pg.js';
import { startSteadySite, type SteadySite } from './harness/steady-site.js';
import { waitFor } from './harness/wait-for.js';

/** every counter a refused or dropped MQTT message or connection moves */
const DROP_COUNTERS = [
  'hcp_ingest_rejected_total', 'hcp_broker_rejected_publishes_total', 'hcp_feed_rejected_total',
  'hcp_broker_refused_connections_total', 'hcp_broker_refused_subscriptions_total', 'hcp_broker_oversized_packets_total',
];
const drops = (m: Metrics) => DROP_COUNTERS.reduce((n, c) => n + m.sum(c), 0);

const WRITE_FAILED = 'telemetry write failed; will retry';
/** ingest reasons that refuse a whole batch: nothing of it reaches the writer */
const BATCH_REASONS = ['malformed', 'site_mismatch', 'unknown_site', 'duplicate'];

describePg('MQTT fuzzing', (pg) => {
  let t: FuzzTarget;
  let steady: SteadySite;
  let sql: postgres.Sql;
  const clients = new Set<MqttClient>();
  const clocks = new Map<string, number>();
  /** a sample time no earlier case used for this device */
  const now = (id: string) => {
    const v = Math.max((clocks.get(id) ?? 0) + 1, Date.now());
    clocks.set(id, v);
    return v;
  };
  let n = 0;

  const credentialsOf = (l: Login): IClientOptions => {
    switch (l) {
      case 'agent':
        return { username: FUZZ_SITE, password: t.keys.agent };
      case 'feed':
        return { username: 'fuzz-feed', password: t.keys.feed };
      case 'viewer':
        return { username: 'fuzz-viewer', password: t.keys.viewer };
      case 'customer':
        return { username: 'fuzz-customer', password: t.keys.customer };
      case 'bad_secret':
        return { username: FUZZ_SITE, password: 'hcp_not-the-secret-of-this-key-000000000' };
      case 'unknown_user':
        return { username: 'nobody', password: 'x' };
      case 'agent_as_other_site':
        return { username: 'steady-1', password: t.keys.agent };
      case 'anonymous':
        return {};
    }
  };

  /** connected, or refused with a CONNACK code, or closed before either */
  const open = (o: IClientOptions) =>
    new Promise<{ client: MqttClient } | { refused: number } | { closed: string }>((resolve) => {
      const client = mqtt.connect(t.cp.mqtt, { reconnectPeriod: 0, connectTimeout: 10_000, protocolVersion: 4, ...o });
      clients.add(client);
      client.once('connect', () => resolve({ client }));
      client.once('error', (err: Error & { code?: unknown }) => resolve(typeof err.code === 'number' ? { refused: err.code } : { closed: err.message }));
      client.once('close', () => resolve({ closed: 'closed' }));
    });
  const close = async (c: MqttClient) => {
    clients.delete(c);
    await c.endAsync(true).catch(() => {});
  };
  const writerFailing = () => t.cp.proc.lines.some((l) => l.msg === WRITE_FAILED);
  // once a property has reported the writer failing, the later ones do not report it again
  let writerFailureReported = false;
  const reported = () => (writerFailureReported ? [/^telemetry write failed; will retry$/] : []);

  beforeAll(async () => {
    // bulk writes every 20 ms, so a case can wait for the write of what it sent
    t = await startFuzzTarget(pg.url, { env: { HCP_INGEST_FLUSH_MS: '20' } });
    steady = await startSteadySite(t.cp);
    sql = postgres(pg.url, { max: 2, onnotice: () => {} });
  });

  afterAll(async () => {
    for (const c of clients) await close(c);
    await steady?.close();
    await sql?.end();
    await t?.close();
  });

  /** the times stored for each device since `from` */
  const storedTimes = async (table: 'gpu_telemetry' | 'asic_telemetry', ids: string[], from: number) => {
    const rows = await sql.unsafe<{ d: string; t: string }[]>(
      `SELECT device_id AS d, (extract(epoch FROM time) * 1000)::bigint::text AS t FROM ${table} WHERE device_id = ANY($1) AND time >= to_timestamp($2 / 1000.0)`,
      [ids, from],
    );
    return new Set(rows.map((r) => `${r.d} ${r.t}`));
  };

  it('counts every bad publish and login, takes every good one, and accepts nothing silently', { timeout: fuzzTestTimeout(120_000) }, async () => {
    const start = t.mark();
    // The telemetry writer retries a failed bulk write with every later sample (a known bug, being
    // fixed elsewhere): once it fails no case can pass. The case whose samples made it fail is the
    // counterexample; the cases after it (and fast-check's shrinks, which cannot undo the failure)
    // are not run. The batches handed to the writer last are kept, to name them if that case is missed.
    const handed: string[] = [];
    // HCP_FUZZ_STATS=1: how the cases ended
    const seen = new Map<string, number>();
    const note = (k: string) => seen.set(k, (seen.get(k) ?? 0) + 1);
    await fc.assert(
      fc.asyncProperty(mqttCase, async (c: MqttCase) => {
        await new Promise((r) => setImmediate(r)); // skipped runs must not starve the event loop
        if (writerFailing()) {
          fc.pre(!writerFailureReported);
          writerFailureReported = true;
          throw new Error(`the telemetry writer is failing (${t.cp.proc.lines.find((l) => l.msg === WRITE_FAILED)?.err && JSON.stringify((t.cp.proc.lines.find((l) => l.msg === WRITE_FAILED)!.err as { message?: string }).message)}); the batches handed to it last:\n${handed.join('\n')}`);
        }
        const session = `fuzz-${++n}`;

        const what = `${c.login} (client ${JSON.stringify(c.clientId?.slice(0, 80) ?? null)}, clean ${c.clean}) publishes ${clip(JSON.stringify({ ...c.publish, payload: c.publish.payload.kind === 'batch' ? { ...c.publish.payload, batch: { ...c.publish.payload.batch, gpus: c.publish.payload.batch.gpus.slice(0, 3) } } : c.publish.payload }), 1500)}`;
        const before = await t.metrics();
        // mqtt.js makes up an id only for a clean session
        const id = !c.clean && !c.clientId ? `fuzz-${n}` : c.clientId;
        const opened = await open({ ...credentialsOf(c.login), clean: c.clean, ...(id !== null ? { clientId: id } : {}) });
        if (!('client' in opened)) {
          // refused at CONNECT (or closed by the broker before CONNACK): counted
          await waitFor(async () => (await t.metrics()).sum('hcp_broker_refused_connections_total') > before.sum('hcp_broker_refused_connections_total'), { timeoutMs: 10_000, message: `${what}: refused ${JSON.stringify(opened)} and counted` });
          note(`${c.login}: login refused`);
          return;
        }
        const client = opened.client;
        const { topic, qos, retain } = c.publish;
        const { bytes, batch } = payloadBytes(c.publish.payload, now, session);
        // the sentinel: a message of this login the ingest path counts, after the publish
        const viaIngest = c.login === 'agent' || c.login === 'feed' || c.login === 'anonymous';
        const sentinel = c.login === 'agent' ? { topic: `hcp/v1/sites/${FUZZ_SITE}/status`, counter: 'hcp_ingest_rejected_total', reason: 'malformed_status' } : { topic: 'hcp/v1/market/btc_usd', counter: 'hcp_feed_rejected_total', reason: 'malformed_price' };
        // what the publish itself adds to the sentinel's counter, by the payload rules both sides share
        const market = parseMarketTopic(topic);
        const mine = c.login === 'agent' ? topic === TOPICS.status && (() => { const s = decodeStatus(bytes); return !s || s.site !== FUZZ_SITE; })() : !!market && market.kind !== 'grid_frequency' && decodePrice(bytes) === null;
        // a publish the broker answers by closing the connection never settles in mqtt.js: its close ends the wait
        const gone = new Promise<'closed'>((resolve) => {
          if (!client.connected) resolve('closed');
          client.once('close', () => resolve('closed'));
        });
        const send = async () => {
          await client.publishAsync(topic, bytes, { qos, retain });
          await client.publishAsync(sentinel.topic, 'sentinel', { qos: 1 });
          return 'sent' as const;
        };
        let cut = (await Promise.race([send().catch(() => 'closed' as const), gone])) === 'closed';
        cut ||= !client.connected;
        if (cut) {
          // the broker cut the connection: for a packet past the limit, or one that breaks the protocol; counted
          await waitFor(async () => drops(await t.metrics()) > drops(before), { timeoutMs: 10_000, message: `${what}: the cut connection was counted` });
          await close(client);
          note(`${c.login}: connection cut`);
          return;
        }
        const target = before.get(sentinel.counter, { reason: sentinel.reason }) + 1 + (viaIngest && mine ? 1 : 0);
        const after = viaIngest
          ? await waitFor(async () => { const m = await t.metrics(); return m.get(sentinel.counter, { reason: sentinel.reason }) >= target && m; }, { timeoutMs: 10_000, intervalMs: 10, message: `${what}: the sentinel was counted` })
          : await t.metrics();
        await close(client);
        // a batch (or some of its samples) handed to the writer: its write is waited for, so a
        // write that fails is blamed on the case that caused it
        const wholeBatchRefused = BATCH_REASONS.some((r) => after.get('hcp_ingest_rejected_total', { reason: r }) > before.get('hcp_ingest_rejected_total', { reason: r }));
        if (c.login === 'agent' && topic === TOPICS.telemetry && !wholeBatchRefused) {
          handed.push(what.slice(0, 2000));
          if (handed.length > 3) handed.shift();
          // every batch taken so far (the steady site's too) is written once the commit-lag histogram
          // has observed as many batches as ingest accepted: then this one was written, or it failed
          const taken = after.get('hcp_ingest_batches_total');
          await waitFor(async () => writerFailing() || (await t.metrics()).get('hcp_ingest_lag_seconds_count') >= taken, { timeoutMs: 10_000, intervalMs: 10, message: `${what}: its samples written` });
          if (writerFailing()) {
            writerFailureReported = true;
            const line = t.cp.proc.lines.find((l) => l.msg === WRITE_FAILED)!;
            throw new Error(`${what}: the telemetry writer failed on the samples of this batch and will retry them forever (known writer bug): ${JSON.stringify((line.err as { message?: string } | undefined)?.message)}`);
          }
        }
        // the sentinel is one drop of its own (a viewer's: forbidden at the broker)
        const dropped = drops(after) - drops(before) - 1;
        if (dropped >= 1) {
          const by = DROP_COUNTERS.filter((m) => after.sum(m) > before.sum(m)).map((m) => m.replace(/^hcp_|_total$/g, '')).join('+');
          note(`${c.login}: dropped (${by})`);
          return;
        }
        note(`${c.login}: taken on ${topic === TOPICS.telemetry ? 'telemetry' : topic === TOPICS.status ? 'status' : 'a feed topic'}`);
        // nothing counted: the publish must have been taken, and be one that may be
        if (market && (c.login === 'feed' || c.login === 'anonymous')) {
          const ok = market.kind === 'grid_frequency' ? decodeFrequency(bytes) !== null : decodePrice(bytes) !== null;
          expect(ok, `${what}: taken, but proto/market-topics.ts refuses the payload`).toBe(true);
          expect(after.sum('hcp_feed_messages_total'), `${what}: taken, but hcp_feed_messages_total did not move`).toBeGreaterThan(before.sum('hcp_feed_messages_total'));
          return;
        }
        if (c.login === 'agent' && topic === TOPICS.status) {
          expect(decodeStatus(bytes)?.site, `${what}: a status taken silently that proto/topics.ts refuses`).toBe(FUZZ_SITE);
          return;
        }
        expect(c.login === 'agent' && topic === TOPICS.telemetry && batch, `${what}: neither counted nor taken`).toBeTruthy();
        // a batch taken whole: every sample lands
        const b = batch!;
        const from = Math.min(...b.gpus.map((g) => g.tsMs), ...b.asics.map((a) => a.tsMs));
        const want = { gpu: new Set(b.gpus.map((g) => `${g.deviceId} ${g.tsMs}`)), asic: new Set(b.asics.map((a) => `${a.deviceId} ${a.tsMs}`)) };
        let missing: string[] = [];
        try {
          await waitFor(
            async () => {
              const g = want.gpu.size ? await storedTimes('gpu_telemetry', [...new Set(b.gpus.map((x) => x.deviceId))], from) : new Set<string>();
              const a = want.asic.size ? await storedTimes('asic_telemetry', [...new Set(b.asics.map((x) => x.deviceId))], from) : new Set<string>();
              missing = [...[...want.gpu].filter((k) => !g.has(k)), ...[...want.asic].filter((k) => !a.has(k))];
              return missing.length === 0;
            },
            { timeoutMs: 15_000, intervalMs: 50, message: 'rows' },
          );
        } catch {
          const failed = logProblems(t.cp.proc.lines.slice(start)).filter((p) => p.includes(WRITE_FAILED));
          throw new Error(`${what}: a batch taken whole (nothing counted), but ${missing.length} of its ${want.gpu.size + want.asic.size} samples never reached PostgreSQL${failed.length ? `; the control plane logged:\n${failed.slice(0, 3).join('\n')}` : ''}`);
        }
      }),
      fuzzParams(500, 120_000),
    );
    if (process.env.HCP_FUZZ_STATS) console.log([...seen].sort().map(([k, v]) => `${String(v).padStart(5)} ${k}`).join('\n'));
    t.assertHealthy(start);
  });

  it('counts every refused subscription, once per filter', { timeout: fuzzTestTimeout(30_000) }, async () => {
    const start = t.mark();
    const filter = fc.oneof(
      fc.constantFrom(...TOPICS.market, ...TOPICS.others, TOPICS.telemetry, TOPICS.status, 'hcp/v1/sites/+/status', 'hcp/v1/market/#', 'hcp/v1/grid/+/frequency', '$SYS/#', '$hcp/#', 'hcp/v1/sites/fuzz-1/#'),
      trickyString.filter((s) => s.length > 0 && Buffer.byteLength(s) < 65_535),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<Login>('agent', 'feed', 'anonymous', 'viewer'), fc.uniqueArray(filter, { minLength: 1, maxLength: 4 }), async (login, filters) => {
        const before = await t.metrics();
        const opened = await open(credentialsOf(login));
        if (!('client' in opened)) throw new Error(`${login} could not connect: ${JSON.stringify(opened)}`);
        const granted = await new Promise<number[] | null>((resolve) => {
          try {
            // on a refusal mqtt.js reports an error whose packet holds the SUBACK's codes (its granted list is what was asked)
            opened.client.subscribe(filters, { qos: 1 }, (err, g) => resolve(err ? ((err as { packet?: { granted?: number[] } }).packet?.granted ?? null) : (g?.map((x) => x.qos) ?? null)));
          } catch {
            resolve(null); // a filter mqtt.js will not send
          }
        });
        const connected = opened.client.connected;
        await close(opened.client);
        const what = `${login} subscribes ${clip(JSON.stringify(filters), 400)} → ${JSON.stringify(granted)}`;
        if (granted === null) {
          // not sent, or the connection was cut for a filter the broker could not read
          expect(t.cp.proc.child.exitCode, what).toBeNull();
          return;
        }
        expect(connected, what).toBe(true);
        const refused = granted.filter((q) => q === 128).length;
        const after = await t.metrics();
        expect(after.sum('hcp_broker_refused_subscriptions_total') - before.sum('hcp_broker_refused_subscriptions_total'), what).toBe(refused);
      }),
      fuzzParams(200, 30_000),
    );
    t.assertHealthy(start, undefined, reported());
  });

  it('survives raw bytes on the broker socket', { timeout: fuzzTestTimeout(30_000) }, async () => {
    const start = t.mark();
    const { port } = new URL(t.cp.mqtt);
    // a CONNECT the broker accepts (MQTT 3.1.1, anonymous, clean, id "raw"), to get past the first packet
    const CONNECT = Buffer.from([0x10, 0x0f, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x03, 0x72, 0x61, 0x77]);
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.uint8Array({ minLength: 1, maxLength: 300 }), async (connectFirst, junk) => {
        await new Promise<void>((resolve) => {
          const s = tcpConnect(Number(port), '127.0.0.1', () => s.end(Buffer.concat([connectFirst ? CONNECT : Buffer.alloc(0), Buffer.from(junk)])));
          s.on('data', () => {});
          s.on('error', () => {});
          s.on('close', () => resolve());
        });
        expect(t.cp.proc.child.exitCode).toBeNull();
      }),
      fuzzParams(200, 30_000),
    );
    t.assertHealthy(start, undefined, reported());
  });

  it("kept the steady site's telemetry landing throughout", { timeout: 60_000 }, async () => {
    expect(steady.streamEnded()).toBeNull();
    const { batches } = await steady.stopAndVerify(pg.url, () => logProblems(t.cp.proc.lines));
    expect(batches).toBeGreaterThan(0);
    t.assertHealthy();
  });
});
