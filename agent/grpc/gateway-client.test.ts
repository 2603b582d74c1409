// The agent's gateway client with several control-plane replicas (host:port,host:port…): it
// dials the first, and when that replica's stream ends it reconnects to the next — two real
// gRPC servers on loopback ports, the first of which goes away.
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentGatewayService, type AgentMessage, type ControlMessage } from '../../proto/gen/hcp/v1/gateway.js';
import { waitFor } from '../../test/harness/wait-for.js';
import { createAgentMetrics } from '../metrics.js';
import { createGatewayClient, gatewayAddresses, type GatewayClient } from './gateway-client.js';

/** a replica: answers Hello with HelloAck, counts the hellos it got, can drop its streams */
async function replica() {
  const streams = new Set<ServerDuplexStream<AgentMessage, ControlMessage>>();
  let hellos = 0;
  const server = new Server();
  server.addService(AgentGatewayService, {
    connect(s: ServerDuplexStream<AgentMessage, ControlMessage>) {
      streams.add(s);
      s.on('data', (m: AgentMessage) => {
        if (m.body?.$case !== 'hello') return;
        hellos++;
        s.write({ body: { $case: 'helloAck', value: { heartbeatIntervalMs: 60_000, serverTimeMs: Date.now(), devicesRegistered: 0, gridTrip: undefined } } });
      });
      s.on('error', () => {});
      s.on('end', () => s.end());
    },
  });
  const port = await new Promise<number>((ok, ko) => server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? ko(e) : ok(p))));
  return {
    address: `127.0.0.1:${port}`,
    hellos: () => hellos,
    /** the replica dies: its streams end and it stops listening */
    kill: () => {
      for (const s of streams) s.destroy(new Error('gone'));
      server.forceShutdown();
    },
    close: () => server.forceShutdown(),
  };
}

describe('gateway client with several replicas', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  it('splits host:port,host:port… into its addresses', () => {
    expect(gatewayAddresses('a:1, b:2,,c:3')).toEqual(['a:1', 'b:2', 'c:3']);
    expect(gatewayAddresses('127.0.0.1:50051')).toEqual(['127.0.0.1:50051']);
  });

  it('dials the first replica, and the next one when the first goes away', async () => {
    const one = await replica();
    const two = await replica();
    cleanups.push(one.close, two.close);
    const client: GatewayClient = createGatewayClient({
      address: `${one.address},${two.address}`, minBackoffMs: 20, maxBackoffMs: 100,
      hello: () => ({ siteId: 'texas-1', agentVersion: 'test', agentSession: 's', hostname: 'h', devices: [] }),
      health: () => ({ reporting: 0, total: 0 }),
      log: pino({ level: 'silent' }),
      metrics: createAgentMetrics(),
    });
    cleanups.unshift(() => client.close());
    await waitFor(() => client.connected(), { message: 'connected' });
    expect([one.hellos(), two.hellos()]).toEqual([1, 0]);

    one.kill();
    await waitFor(() => two.hellos() === 1 && client.connected(), { message: 'reconnected to the second replica' });
    expect(one.hellos()).toBe(1);
  });
});
