// The agent's spool end to end in-process: a real gRPC control-plane stand-in on a loopback port
// (it records the Hello and answers TelemetryCommitted when the test says), a real Aedes broker
// and a subscriber that decodes every batch. Batches the control plane has not committed are
// sent again; an agent closed with batches pending and started again on the same state dir
// publishes the very same (stream, seq) batches again, bytes and all; a commit trims; the bound
// drops the oldest segment and the agent says so (AgentMessage.spool_state).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentGatewayService, type AgentMessage, type ControlMessage, type Hello } from '../../proto/gen/hcp/v1/gateway.js';
import { TelemetryBatch } from '../../proto/gen/hcp/v1/telemetry.js';
import { startTs } from '../../test/harness/processes.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createAgent, type Agent } from '../agent.js';
import { parseAgentArgs } from '../config.js';
import { simDriverRegistry } from '../main-sim.js';
import { RESERVE_STEP } from './spool.js';

const SITE = 'texas-8';
const until = <T>(ok: () => T | null | undefined | false | Promise<T | null | undefined | false>, message: string) => waitFor(ok, { timeoutMs: 15_000, intervalMs: 20, message });

interface Seen {
  stream: string;
  seq: number;
  session: string;
  sentAtMs: number;
  samples: number;
  bytes: Buffer;
}
interface Health {
  mqtt_connected: boolean;
  control_plane_connected: boolean;
  spool: { stream: string; first_seq: number; next_seq: number; bytes: number; pending: number; committed: number };
}

describe('the agent spools telemetry on disk until the control plane commits it', () => {
  let aedes: Aedes;
  let broker: NetServer;
  let mqttUrl = '';
  let cp: Server;
  let cpPort = 0;
  let sub: MqttClient;
  const seen: Seen[] = [];
  const received: AgentMessage[] = [];
  const streams = new Set<ServerDuplexStream<AgentMessage, ControlMessage>>();
  const agents: Agent[] = [];
  const dirs: string[] = [];

  const args = (dir: string, extra: string[] = []) => {
    const parsed = parseAgentArgs([
      '--site', SITE, '--control-plane', `127.0.0.1:${cpPort}`, '--mqtt', mqttUrl, '--sim-asics', '4', '--sim-startup-s', '1',
      // ticks are driven by the test
      '--sample-interval-ms', '60000', '--state-dir', dir, ...extra,
    ], {});
    if (!('config' in parsed)) throw new Error('expected a config');
    return parsed.config;
  };
  const start = async (dir: string, extra: string[] = []) => {
    const a = await createAgent(args(dir, extra), pino({ level: 'silent' }), { drivers: simDriverRegistry() });
    agents.push(a);
    await until(async () => {
      const h = await health(a);
      return h.mqtt_connected && h.control_plane_connected;
    }, 'agent connected to the broker and the control plane');
    return a;
  };
  const stop = async (a: Agent) => {
    await a.close();
    agents.splice(agents.indexOf(a), 1);
  };
  const health = async (a: Agent) => (await (await fetch(`http://127.0.0.1:${a.httpPort}/health`)).json()) as Health;
  const commit = (stream: string, seq: number) => {
    for (const s of streams) s.write({ body: { $case: 'telemetryCommitted', value: { stream, seq } } });
  };
  const hellos = () => received.flatMap((m) => (m.body?.$case === 'hello' ? [m.body.value] : [])) as Hello[];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'hcp-agent-spool-'));
    dirs.push(d);
    return d;
  };

  beforeAll(async () => {
    aedes = await Aedes.createBroker();
    broker = createServer(aedes.handle);
    await new Promise<void>((resolve) => broker.listen(0, '127.0.0.1', resolve));
    mqttUrl = `mqtt://127.0.0.1:${(broker.address() as { port: number }).port}`;
    sub = await mqtt.connectAsync(mqttUrl);
    sub.on('message', (_t, payload) => {
      const b = TelemetryBatch.decode(payload);
      seen.push({ stream: b.stream ?? '', seq: b.seq, session: b.agentSession, sentAtMs: b.sentAtMs, samples: b.asics.length + b.gpus.length, bytes: Buffer.from(payload) });
    });
    await sub.subscribeAsync(`hcp/v1/sites/${SITE}/telemetry`, { qos: 1 });
    cp = new Server();
    cp.addService(AgentGatewayService, {
      connect: (call: ServerDuplexStream<AgentMessage, ControlMessage>) => {
        streams.add(call);
        call.on('data', (m: AgentMessage) => {
          received.push(m);
          if (m.body?.$case === 'hello') {
            call.write({ body: { $case: 'helloAck', value: { heartbeatIntervalMs: 60_000, serverTimeMs: Date.now(), devicesRegistered: 4, gridTrip: undefined } } });
          }
        });
        call.on('end', () => {
          streams.delete(call);
          call.end();
        });
        call.on('error', () => streams.delete(call));
      },
    });
    cpPort = await new Promise<number>((resolve, reject) => cp.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  });
  afterAll(async () => {
    for (const a of agents) await a.close();
    cp?.forceShutdown();
    await sub?.endAsync();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('replays after a restart the batches the control plane had not committed: same stream, seq and bytes', async () => {
    const dir = tmp();
    const first = await start(dir);
    const hello1 = hellos().at(-1)!;
    const stream = hello1.spool!.stream;
    expect(hello1.spool).toMatchObject({ firstSeq: 1, nextSeq: 1 });
    for (let i = 0; i < 5; i++) await first.tick();
    const live = await until(() => {
      const mine = seen.filter((s) => s.stream === stream);
      return new Set(mine.map((s) => s.seq)).size === 5 ? mine : null;
    }, 'five live batches');
    expect([...new Set(live.map((s) => s.seq))].sort()).toEqual([1, 2, 3, 4, 5]);
    const original = new Map(live.map((s) => [s.seq, s]));
    commit(stream, 2);
    await until(async () => (await health(first)).spool.committed === 2, 'the commit taken');
    expect((await health(first)).spool).toMatchObject({ stream, pending: 3, first_seq: 3, next_seq: 6 });
    await stop(first);

    const before = seen.length;
    const second = await start(dir);
    expect(hellos().at(-1)!.spool).toMatchObject({ stream, firstSeq: 3, nextSeq: 6 });
    // the replay: 3, 4, 5 again, as they were stored (the first session, its sent_at)
    const replayed = await until(() => {
      const again = seen.slice(before).filter((s) => s.stream === stream);
      return [3, 4, 5].every((q) => again.some((s) => s.seq === q)) ? again : null;
    }, 'the uncommitted batches published again');
    expect(replayed.some((s) => s.seq <= 2)).toBe(false);
    for (const s of replayed) {
      expect(s.bytes.equals(original.get(s.seq)!.bytes)).toBe(true);
      expect(s.session).toBe(original.get(s.seq)!.session);
    }
    // the seqs go on in the same stream, with the new session
    await second.tick();
    const next = await until(() => seen.find((s) => s.stream === stream && s.seq === 6), 'batch 6');
    expect(next.session).not.toBe(original.get(1)!.session);
    commit(stream, 6);
    await until(async () => (await health(second)).spool.pending === 0, 'everything committed');
    expect((await health(second)).spool).toMatchObject({ stream, first_seq: 7, next_seq: 7, bytes: 0 });
    expect(readdirSync(join(dir, 'spool')).filter((f) => f.endsWith('.seg'))).toEqual([]);
    await stop(second);
  });

  it('a killed agent process (SIGKILL) started again on its state dir publishes the same batches again, and never reuses a seq', async () => {
    const dir = tmp();
    const run = () => startTs(`agent-${SITE}`, 'agent/main.ts', [
      '--site', SITE, '--control-plane', `127.0.0.1:${cpPort}`, '--mqtt', mqttUrl, '--sim-asics', '4', '--sim-startup-s', '1',
      '--sample-interval-ms', '200', '--state-dir', dir,
    ]);
    const helloCount = hellos().length;
    const p1 = run();
    try {
      const stream = (await until(() => hellos()[helloCount]?.spool, 'the first Hello')).stream;
      const before = await until(() => {
        const mine = seen.filter((s) => s.stream === stream);
        return mine.length >= 5 ? mine : null;
      }, 'five batches from the agent process');
      await p1.kill('SIGKILL');
      const original = new Map(before.map((s) => [s.seq, s]));
      const from = seen.length;
      const p2 = run();
      try {
        const hello = await until(() => hellos()[helloCount + 1], 'the second Hello');
        expect(hello.spool!.stream).toBe(stream);
        expect(hello.spool!.firstSeq).toBe(1);
        // an unclean stop: the rest of the reservation is filled, the next batch comes after it
        expect(hello.spool!.nextSeq).toBeGreaterThan(RESERVE_STEP);
        const again = await until(() => {
          const mine = seen.slice(from).filter((s) => s.stream === stream);
          return [...original.keys()].every((q) => mine.some((s) => s.seq === q)) ? mine : null;
        }, 'the batches made before the kill published again');
        for (const s of again.filter((x) => original.has(x.seq))) expect(s.bytes.equals(original.get(s.seq)!.bytes)).toBe(true);
        const fresh = await until(() => seen.slice(from).find((s) => s.stream === stream && s.session === hello.agentSession && s.samples > 0), 'a batch of the new process');
        expect(fresh.seq).toBeGreaterThanOrEqual(hello.spool!.nextSeq);
        // the placeholders say nothing: no samples under a seq that may already hold a real batch
        const filled = seen.slice(from).filter((s) => s.stream === stream && s.seq > Math.max(...original.keys()) && s.seq < hello.spool!.nextSeq);
        for (const s of filled) expect(s.samples).toBe(0);
      } finally {
        await p2.kill('SIGKILL');
      }
    } finally {
      await p1.kill('SIGKILL');
    }
  });

  it('sends again what is not committed in time, until it is', async () => {
    const dir = tmp();
    const a = await start(dir, ['--resend-after-ms', '200']);
    const stream = hellos().at(-1)!.spool!.stream;
    await a.tick();
    await until(() => seen.filter((s) => s.stream === stream && s.seq === 1).length >= 3, 'batch 1 sent three times');
    const metrics = await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
    expect(Number(/^hcp_agent_batches_resent_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    commit(stream, 1);
    await until(async () => (await health(a)).spool.pending === 0, 'batch 1 committed');
    await stop(a);
  });

  it('at its bound drops the oldest segment and tells the control plane where its spool now starts', async () => {
    const dir = tmp();
    const a = await start(dir, ['--spool-segment-bytes', '4096', '--spool-max-bytes', '8192']);
    const stream = hellos().at(-1)!.spool!.stream;
    const told = () => received.flatMap((m) => (m.body?.$case === 'spoolState' && m.body.value.stream === stream ? [m.body.value] : []));
    for (let i = 0; i < 40 && told().length === 0; i++) await a.tick();
    const [s] = await until(() => (told().length ? told() : null), 'a spool_state message');
    expect(s!.firstSeq).toBeGreaterThan(1);
    expect(s!.bytes).toBeLessThanOrEqual(8192);
    const h = await health(a);
    expect(h.spool.first_seq).toBeGreaterThanOrEqual(s!.firstSeq);
    const metrics = await (await fetch(`http://127.0.0.1:${a.httpPort}/metrics`)).text();
    expect(Number(/^hcp_agent_spool_segments_dropped_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1);
    await stop(a);
  });
});
