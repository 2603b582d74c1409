// gRPC over TLS: the control plane's gRPC server (startGrpcServer with the real AgentGateway)
// and the agent's gateway client, with certificates from `npm run certs`, over loopback.
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentMetrics } from '../agent/metrics.js';
import { createGatewayClient, type ClientTls, type GatewayClient } from '../agent/grpc/gateway-client.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { migrate } from '../control-plane/db/migrate.js';
import { createAgentGateway } from '../control-plane/grpc/agent-gateway.js';
import { EventStream } from '../control-plane/events.js';
import { startGrpcServer, type GrpcServer, type GrpcServerTls } from '../control-plane/grpc/server.js';
import { createMetrics } from '../control-plane/metrics.js';
import { Registry } from '../control-plane/registry/registry.js';
import { createRegistryTracker, type RegistryTracker } from '../control-plane/registry/tracker.js';
import { createKeyAdmin } from '../control-plane/auth/key-admin.js';
import { createKeyRing, type KeyRing } from '../control-plane/auth/key-ring.js';
import { createAuditWriter } from '../control-plane/db/audit-writer.js';
import { makeTestCerts, type TestCerts } from './harness/certs.js';
import { device } from './harness/grpc-agent.js';
import { describePg } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

describePg('gRPC over TLS', (pg) => {
  let certs: TestCerts;
  let otherCa: TestCerts;
  let db: Db;
  let registry: Registry;
  const trackers: RegistryTracker[] = [];
  const servers: GrpcServer[] = [];
  const clients: GatewayClient[] = [];
  let ring: KeyRing;
  /** each site's credential: the stream carries it whatever the transport */
  const tokens = new Map<string, string>();

  beforeAll(async () => {
    certs = makeTestCerts(['texas-1']);
    otherCa = makeTestCerts(['texas-1']);
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    await migrate(db);
    const log = pino({ level: 'silent' });
    ring = await createKeyRing({ db, log });
    const audit = createAuditWriter({ db, log });
    const keys = createKeyAdmin({ db, ring, registry: new Registry({ staleAfterMs: 60_000 }), audit, log, maxSites: 100 });
    for (const site of ['tls-name', 'tls-ip', 'tls-wrong-ca', 'texas-1', 'mtls-no-cert', 'mtls-other-cert']) {
      tokens.set(site, (await keys.create({ role: 'agent', siteId: site }, 'test')).secret);
    }
    await audit.close();
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    for (const s of servers) await s.close();
    for (const t of trackers) await t.close();
    await ring?.close();
    await db?.close();
    certs?.remove();
    otherCa?.remove();
  });

  /** the control plane's gRPC side: a fresh registry, the real AgentGateway, auto-registering sites */
  const serve = async (tls: GrpcServerTls) => {
    registry = new Registry({ staleAfterMs: 60_000 });
    const metrics = createMetrics();
    const log = pino({ level: 'silent' });
    const tracker = createRegistryTracker({ registry, db, log, metrics, intervalMs: 60_000 });
    trackers.push(tracker);
    const gateway = createAgentGateway({
      events: new EventStream(),
      registry, tracker, db, metrics, log, heartbeatMs: 60_000, autoRegisterSites: true, ring, maxDevicesPerSite: 100, maxSites: 100,
    });
    const server = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [{ service: gateway.service, impl: gateway.impl }], tls });
    servers.push(server);
    return { server, gateway };
  };

  /** the agent's real client; its warnings are kept so a refusal can be seen, not inferred from silence */
  const dial = (host: string, port: number, site: string, tls: ClientTls) => {
    const warnings: Array<{ msg: string; why?: string }> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) warnings.push(JSON.parse(line));
        done();
      },
    });
    const client = createGatewayClient({
      address: `${host}:${port}`, tls, token: tokens.get(site), minBackoffMs: 50, maxBackoffMs: 200,
      hello: () => ({ siteId: site, agentVersion: 'test', agentSession: `${site}-${Math.random()}`, hostname: 'test', devices: [device(`gpu-${site}-0001`, 'gpu')] }),
      health: () => ({ reporting: 1, total: 1 }),
      log: pino({ level: 'warn' }, sink),
      metrics: createAgentMetrics(),
    });
    clients.push(client);
    return { client, warnings };
  };

  const refused = async (d: ReturnType<typeof dial>) =>
    waitFor(() => d.warnings.find((w) => w.msg === 'control plane stream down' && w.why?.startsWith('UNAVAILABLE')), { message: 'the connection refused' });

  describe('server TLS', () => {
    let port: number;
    beforeAll(async () => {
      port = (await serve({ cert: certs.serverCert, key: certs.serverKey })).server.port;
    });

    it('an agent trusting the CA connects, by name and by address', async () => {
      const byName = dial('localhost', port, 'tls-name', { ca: certs.ca });
      const byIp = dial('127.0.0.1', port, 'tls-ip', { ca: certs.ca });
      await waitFor(() => byName.client.connected() && byIp.client.connected(), { message: 'both connected over TLS' });
      expect(registry.site('tls-name')?.agentVersion).toBe('test');
      expect(registry.site('tls-ip')?.agentVersion).toBe('test');
    });

    it('an agent trusting another CA is refused before its hello', async () => {
      const d = dial('localhost', port, 'tls-wrong-ca', { ca: otherCa.ca });
      const w = await refused(d);
      expect(w.why).toMatch(/certificate|self[- ]signed|verify/i);
      expect(d.client.connected()).toBe(false);
      expect(registry.site('tls-wrong-ca')).toBeUndefined();
    });
  });

  describe('mutual TLS (a client CA given)', () => {
    let port: number;
    beforeAll(async () => {
      port = (await serve({ cert: certs.serverCert, key: certs.serverKey, clientCa: certs.ca })).server.port;
    });

    it('an agent with a certificate from that CA connects', async () => {
      const d = dial('localhost', port, 'texas-1', { ca: certs.ca, ...certs.client('texas-1') });
      await waitFor(() => d.client.connected(), { message: 'connected with a client certificate' });
      expect(registry.site('texas-1')?.agentVersion).toBe('test');
    });

    it('a client certificate of one site with another site\'s credential is refused', async () => {
      const d = dial('localhost', port, 'tls-name', { ca: certs.ca, ...certs.client('texas-1') });
      const w = await waitFor(() => d.warnings.find((x) => x.msg === 'control plane stream down' && x.why?.startsWith('PERMISSION_DENIED')), { message: 'refused' });
      expect(w.why).toContain('certificate_site_mismatch');
      expect(registry.site('tls-name')).toBeUndefined();
    });

    it('an agent without a client certificate is refused', async () => {
      const d = dial('localhost', port, 'mtls-no-cert', { ca: certs.ca });
      await refused(d);
      expect(d.client.connected()).toBe(false);
      expect(registry.site('mtls-no-cert')).toBeUndefined();
    });

    it('an agent whose client certificate another CA issued is refused', async () => {
      const d = dial('localhost', port, 'mtls-other-cert', { ca: certs.ca, ...otherCa.client('texas-1') });
      await refused(d);
      expect(d.client.connected()).toBe(false);
      expect(registry.site('mtls-other-cert')).toBeUndefined();
    });
  });
});
