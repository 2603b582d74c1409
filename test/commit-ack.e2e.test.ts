// Acknowledge after commit, end to end: the control plane in-process on the real PostgreSQL with
// its real broker; an agent's gRPC stream (a Hello with a spool) and its MQTT publisher. Every
// TelemetryCommitted the agent hears names only batches whose rows were in PostgreSQL when it
// heard it; while writes are blocked (a table lock held by another connection) nothing is
// acknowledged; a replay or a redelivery lands once; what is below the spool's first_seq is gone.
import { credentials, Metadata } from '@grpc/grpc-js';
import mqtt, { type MqttClient } from 'mqtt';
import { pino } from 'pino';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadControlPlaneConfig } from '../control-plane/config.js';
import { createControlPlane, type ControlPlane } from '../control-plane/control-plane.js';
import { AgentGatewayClient, type AgentMessage, type ControlMessage, type SpoolState } from '../proto/gen/hcp/v1/gateway.js';
import { TelemetryBatch } from '../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../proto/topics.js';
import { TEST_ADMIN_KEY } from './harness/auth.js';
import { device } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { asic, gpu } from './harness/samples.js';
import { waitFor } from './harness/wait-for.js';

const SITE = 'texas-1';
const STREAM = 'spool-e2e-1';
const GPU = 'gpu-texas-1-0001';
const ASIC = 'asic-texas-1-00001';
const T0 = Date.now();

describePg('acknowledge after commit', (pg) => {
  let cp: ControlPlane;
  let sql: postgres.Sql;
  let pub: MqttClient;
  let token = '';
  const heard: Array<{ seq: number; ledgered: number; rows: number }> = [];
  const closers: Array<() => void> = [];

  /** what PostgreSQL holds of seqs 1..seq: ledger rows, and sample rows of those that stored */
  const stored = async (seq: number) => {
    const [l] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM telemetry_batches WHERE site_id = ${SITE} AND stream = ${STREAM} AND seq <= ${seq}`;
    const [g] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id = ${GPU} AND time <= to_timestamp(${(T0 + seq * 1000) / 1000})`;
    return { ledgered: l!.n, rows: g!.n };
  };

  /** a gRPC agent stream whose Hello carries a spool; every TelemetryCommitted is checked against PostgreSQL as it arrives */
  const connect = (spool: SpoolState | undefined) => {
    const client = new AgentGatewayClient(`127.0.0.1:${cp.grpcPort}`, credentials.createInsecure());
    const md = new Metadata();
    md.set('authorization', `Bearer ${token}`);
    const stream = client.connect(md);
    const received: ControlMessage[] = [];
    stream.on('data', (m: ControlMessage) => {
      received.push(m);
      if (m.body?.$case !== 'telemetryCommitted') return;
      const seq = m.body.value.seq;
      void stored(seq).then((s) => heard.push({ seq, ...s }));
    });
    stream.on('error', () => {});
    stream.write({ body: { $case: 'hello', value: { siteId: SITE, agentVersion: 'test', agentSession: `sess-${received.length}-${Date.now()}`, devices: [device(GPU, 'gpu'), device(ASIC, 'asic')], hostname: 'test', spool } } });
    const close = () => {
      stream.cancel();
      client.close();
    };
    closers.push(close);
    return {
      received,
      committed: () => received.flatMap((m) => (m.body?.$case === 'telemetryCommitted' ? [m.body.value] : [])),
      send: (m: AgentMessage) => stream.write(m),
      close,
    };
  };
  const publish = (seq: number) =>
    pub.publishAsync(topics.telemetry(SITE), Buffer.from(TelemetryBatch.encode({
      siteId: SITE, seq, sentAtMs: Date.now(), agentSession: 'ignored-with-a-stream', stream: STREAM,
      gpus: [gpu(GPU, T0 + seq * 1000, 50, 400)], asics: [asic(ASIC, T0 + seq * 1000, 270, 3645)],
    }).finish()), { qos: 1 });
  const metric = async (name: string, labels = '') => {
    const text = await (await fetch(`http://127.0.0.1:${cp.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
    return line ? Number(line.split(' ').pop()) : 0;
  };

  beforeAll(async () => {
    const config = loadControlPlaneConfig({
      DATABASE_URL: pg.url, HCP_HTTP_PORT: '0', HCP_GRPC_PORT: '0', HCP_MQTT_PORT: '0',
      HCP_INGEST_FLUSH_MS: '30', HCP_HEARTBEAT_MS: '300', LOG_LEVEL: 'silent', HCP_ADMIN_KEY: TEST_ADMIN_KEY,
    });
    cp = await createControlPlane(config, pino({ level: process.env.TEST_LOG ?? 'silent' }));
    sql = postgres(pg.url, { onnotice: () => {} });
    token = (await cp.keys.create({ role: 'agent', siteId: SITE }, 'test')).secret;
    pub = await mqtt.connectAsync(cp.mqttUrl, { clientId: `hcp-agent-${SITE}-pub`, username: SITE, password: token });
  });
  afterAll(async () => {
    for (const c of closers) c();
    await pub?.endAsync();
    await sql?.end();
    await cp?.close();
  });

  it('acknowledges a batch only once its rows are committed, and nothing while writes are blocked', async () => {
    const agent = connect({ stream: STREAM, firstSeq: 1, nextSeq: 1, bytes: 0 });
    await waitFor(() => agent.committed().length > 0, { message: 'the first TelemetryCommitted' });
    expect(agent.received[0]!.body?.$case).toBe('helloAck');
    expect(agent.committed()[0]).toEqual({ stream: STREAM, seq: 0 });

    for (let seq = 1; seq <= 5; seq++) await publish(seq);
    await waitFor(() => agent.committed().at(-1)?.seq === 5, { message: 'seqs 1..5 committed' });

    // writes blocked: the next batch is admitted and its write waits on the lock
    const holder = postgres(pg.url, { max: 1, onnotice: () => {} });
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const held = holder.begin(async (tx) => {
      await tx.unsafe('LOCK TABLE gpu_telemetry IN ACCESS EXCLUSIVE MODE');
      locked();
      await released;
    });
    try {
      await isLocked;
      const batchesBefore = await metric('hcp_ingest_batches_total');
      await publish(6);
      await waitFor(async () => (await metric('hcp_ingest_batches_total')) > batchesBefore, { message: 'seq 6 admitted' });
      await waitFor(async () => (await sql`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%gpu_telemetry%'`).length > 0, { message: 'its write waits on the lock' });
      expect(await metric('hcp_ingest_buffered_bytes')).toBeGreaterThan(0);
      expect(agent.committed().at(-1)?.seq).toBe(5);
    } finally {
      release();
      await held;
      await holder.end();
    }
    await waitFor(() => agent.committed().at(-1)?.seq === 6, { message: 'seq 6 committed once the lock is gone' });
    await waitFor(() => heard.length === agent.committed().length, { message: 'every TelemetryCommitted checked' });
    // whenever the agent heard seq s, PostgreSQL held the ledger rows and the samples of 1..s
    for (const h of heard) expect(h).toEqual({ seq: h.seq, ledgered: h.seq, rows: h.seq });
    agent.close();
  });

  it('lands a replay and a redelivery once; jumps past what is below the spool\'s first_seq', async () => {
    const agent = connect({ stream: STREAM, firstSeq: 4, nextSeq: 7, bytes: 0 });
    // from the ledger at connect: 4..6 committed
    await waitFor(() => agent.committed().length > 0, { message: 'the first TelemetryCommitted' });
    expect(agent.committed()[0]).toEqual({ stream: STREAM, seq: 6 });
    const dup = await metric('hcp_ingest_rejected_total', '{reason="duplicate"}');
    await publish(3);
    await publish(6);
    await waitFor(async () => (await metric('hcp_ingest_rejected_total', '{reason="duplicate"}')) === dup + 2, { message: 'both replays dropped as duplicates' });
    // seq 8 without 7: the watermark waits at the gap
    await publish(8);
    await publish(8);
    await waitFor(async () => (await stored(8)).ledgered === 7, { message: 'seq 8 ledgered' });
    expect(agent.committed().at(-1)?.seq).toBe(6);
    // the agent dropped 7 at its spool's bound: gone, and the watermark passes it
    agent.send({ body: { $case: 'spoolState', value: { stream: STREAM, firstSeq: 8, nextSeq: 9, bytes: 0 } } });
    await waitFor(() => agent.committed().at(-1)?.seq === 8, { message: 'the watermark past seq 7' });
    // one sample per seq sent, 7 never
    const rows = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM gpu_telemetry WHERE device_id = ${GPU}`;
    expect(rows[0]!.n).toBe(7);
    const asics = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM asic_telemetry WHERE device_id = ${ASIC}`;
    expect(asics[0]!.n).toBe(7);
    agent.close();
  });
});
