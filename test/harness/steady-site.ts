// A well-behaved site beside the fuzzers: its own agent credential (made with the admin key), an
// agent stream that registers its two devices and answers commands, and one known
// TelemetryBatch every 250 ms over MQTT (QoS 1) for as long as the fuzzers run. At the end every
// batch it published (by seq) must have all its rows in PostgreSQL: whatever the fuzzers sent, the
// other sites' telemetry kept landing.
import mqtt, { type MqttClient } from 'mqtt';
import postgres from 'postgres';
import { TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { topics } from '../../proto/topics.js';
import { makeKey } from './auth.js';
import { device, openAgentStream, type TestAgentStream } from './grpc-agent.js';
import { asic, gpu } from './samples.js';
import { waitFor } from './wait-for.js';

export interface SteadySite {
  readonly siteId: string;
  /** batches published so far */
  sent(): number;
  /** the status its agent stream ended with, if it did (it should not, while the fuzzers run) */
  streamEnded(): string | null;
  /**
   * stops publishing, then waits until every batch was acknowledged by the broker and has all
   * its rows in PostgreSQL; throws naming the missing seqs and the control plane's error lines
   */
  stopAndVerify(databaseUrl: string, errorLines: () => string[]): Promise<{ batches: number }>;
  close(): Promise<void>;
}

export async function startSteadySite(cp: { http: string; grpc: string; mqtt: string }, siteId = 'steady-1', intervalMs = 250): Promise<SteadySite> {
  const token = await makeKey(cp.http, { role: 'agent', site: siteId });
  const gpuId = `gpu-${siteId}-0001`;
  const asicId = `asic-${siteId}-00001`;
  const stream: TestAgentStream = openAgentStream(cp.grpc, { siteId, session: `${siteId}-session`, token, devices: [device(gpuId, 'gpu'), device(asicId, 'asic')] }, 'apply');
  await waitFor(() => stream.received.some((m) => m.body?.$case === 'helloAck'), { message: `${siteId} HelloAck`, timeoutMs: 10_000 });
  let ended: string | null = null;
  void stream.error.then((e) => (ended = `${e.code} ${e.details}`));

  const client: MqttClient = mqtt.connect(cp.mqtt, { username: siteId, password: token, clientId: `hcp-agent-${siteId}-steady`, reconnectPeriod: 500 });
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });

  const session = `steady-${Date.now().toString(36)}`;
  const t0 = Math.floor(Date.now() / 1000) * 1000;
  /** the sample time of a seq: unique per device, so each batch's rows are found by time */
  const tsOf = (seq: number) => t0 + seq * intervalMs;
  let seq = 0;
  const acked = new Set<number>();
  const failures: string[] = [];
  const publish = () => {
    const n = ++seq;
    const ts = tsOf(n);
    const batch = TelemetryBatch.encode({
      siteId, seq: n, sentAtMs: Date.now(), agentSession: session,
      gpus: [gpu(gpuId, ts, 70, 500)], asics: [asic(asicId, ts, 200, 3000)],
    }).finish();
    client.publishAsync(topics.telemetry(siteId), Buffer.from(batch), { qos: 1 }).then(
      () => acked.add(n),
      (err: Error) => failures.push(`seq ${n}: ${err.message}`),
    );
    stream.heartbeat(n);
  };
  publish();
  const timer = setInterval(publish, intervalMs);

  const close = async () => {
    clearInterval(timer);
    stream.close();
    await client.endAsync(true).catch(() => {});
  };

  return {
    siteId,
    sent: () => seq,
    streamEnded: () => ended,
    async stopAndVerify(databaseUrl, errorLines) {
      clearInterval(timer);
      const total = seq;
      await waitFor(() => acked.size === total || failures.length > 0, { message: `${siteId}: every batch acknowledged (${acked.size}/${total})`, timeoutMs: 20_000 });
      if (failures.length) throw new Error(`${siteId}: publishes failed: ${failures.slice(0, 5).join('; ')}`);
      const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
      try {
        const missing = async () => {
          const times = async (table: string, id: string) =>
            new Set((await sql.unsafe<{ t: string }[]>(`SELECT (extract(epoch FROM time) * 1000)::bigint::text AS t FROM ${table} WHERE device_id = $1`, [id])).map((r) => Number(r.t)));
          const g = await times('gpu_telemetry', gpuId);
          const a = await times('asic_telemetry', asicId);
          const out: number[] = [];
          for (let n = 1; n <= total; n++) if (!g.has(tsOf(n)) || !a.has(tsOf(n))) out.push(n);
          return out;
        };
        let last: number[] = [];
        try {
          await waitFor(async () => (last = await missing()).length === 0, { message: `${siteId}: every batch in PostgreSQL`, timeoutMs: 20_000, intervalMs: 250 });
        } catch {
          const errors = errorLines();
          throw new Error(
            `${siteId}: ${last.length} of its ${total} batches never reached PostgreSQL (seqs ${last.slice(0, 10).join(', ')}${last.length > 10 ? ', …' : ''}).` +
              (errors.length ? `\nThe control plane logged:\n${errors.slice(0, 5).join('\n')}` : ''),
          );
        }
      } finally {
        await sql.end();
      }
      return { batches: total };
    },
    close,
  };
}
