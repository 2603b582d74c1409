// gRPC fuzzing against a running control plane (a child process on the real PostgreSQL, gRPC
// over loopback): hcp.v1.Fleet unary calls and WatchCommands with random messages and metadata,
// raw bytes sent to the method paths by a client with its own serializer, and
// hcp.v1.AgentGateway/Connect streams with random metadata, Hellos and message sequences. What
// must hold for every case:
//   - the process lives and logs nothing fatal, unhandled, or at error level;
//   - a call ends OK, or with a status that is neither INTERNAL nor UNKNOWN and carries the
//     hcp-reason trailer. Two answers come from grpc-js itself, before any HCP code runs, and carry
//     no trailer: UNIMPLEMENTED for a method that does not exist, and RESOURCE_EXHAUSTED for a
//     message past the 4 MiB receive limit;
//   - an accepted WatchCommands stream delivers the commands of its site;
//   - fuzz-1's and the steady site's agent streams stay up, and the steady site's telemetry kept
//     landing throughout.
import { Client, credentials, Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FleetClient, type CommandView } from '../proto/gen/hcp/v1/fleet.js';
import { AgentGatewayClient, type ControlMessage } from '../proto/gen/hcp/v1/gateway.js';
import { makeKey } from './harness/auth.js';
import { connectCase, extraMetadata, fleetCall, garbage, GW_SITE, METHOD_PATHS, UNKNOWN_PATHS, watchRequest, authChoice, type AuthChoice, type FleetCall } from './harness/fuzz-grpc-messages.js';
import { clip, fuzzParams, fuzzTestTimeout } from './harness/fuzz-runs.js';
import { FUZZ_SITE, logProblems, startFuzzTarget, type FuzzTarget } from './harness/fuzz-target.js';
import { describePg } from './harness/pg.js';
import { startSteadySite, type SteadySite } from './harness/steady-site.js';
import { waitFor } from './harness/wait-for.js';

/** a call that has not ended by then hangs: the control plane lost track of it */
const CALL_DEADLINE_MS = 30_000;
const deadline = () => Date.now() + CALL_DEADLINE_MS;

/** printable ASCII, what a metadata string value may hold */
const ascii = (s: string) => s.replace(/[^\x20-\x7e]/gu, (c) => encodeURIComponent(c));

/** an end of a call the control plane may give to anything */
function checkStatus(what: string, s: Pick<StatusObject, 'code' | 'details' | 'metadata'> | null, o: { unknownMethod?: boolean } = {}): void {
  if (!s || s.code === status.OK) return;
  const where = `${what} → ${status[s.code]} ${clip(s.details, 300)}`;
  if (o.unknownMethod && s.code === status.UNIMPLEMENTED) return;
  if (s.code === status.RESOURCE_EXHAUSTED && /larger than max/i.test(s.details)) return;
  expect([status.INTERNAL, status.UNKNOWN], where).not.toContain(s.code);
  expect(s.metadata?.get('hcp-reason').length, `${where}: no hcp-reason trailer`).toBe(1);
}

/** HCP_FUZZ_STATS=1: how the cases ended, printed after each property */
function tally() {
  const seen = new Map<string, number>();
  return {
    note(k: string, s: Pick<StatusObject, 'code' | 'metadata'> | null) {
      const key = `${k} ${s ? status[s.code] : 'OK'} ${s?.metadata?.get('hcp-reason')[0] ?? ''}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    },
    print() {
      if (process.env.HCP_FUZZ_STATS) console.log([...seen].sort().map(([k, n]) => `${String(n).padStart(5)} ${k}`).join('\n'));
    },
  };
}

describePg('gRPC fuzzing', (pg) => {
  let t: FuzzTarget;
  let steady: SteadySite;
  let fleet: FleetClient;
  let raw: Client;
  let gateway: AgentGatewayClient;
  const keys: Partial<Record<AuthChoice, string>> = {};

  const metadataFor = (auth: AuthChoice, extra: Array<[string, string | Buffer]>) => {
    const md = new Metadata();
    const key = (k: AuthChoice) => keys[k] ?? (t.keys as Record<string, string>)[k];
    if (auth === 'unknown') md.set('authorization', 'Bearer hcp_this-key-was-never-made-0000000000');
    else if (auth === 'malformed') md.set('authorization', 'Basic YWRtaW46YWRtaW4=');
    else if (auth !== 'none') md.set('authorization', `Bearer ${key(auth)}`);
    for (const [k, v] of extra) {
      try {
        // past 64 KiB of headers Node's HTTP/2 server ends the connection (COMPRESSION_ERROR) before
        // gRPC sees the call: a limit of the transport, kept out of the cases
        md.add(k, typeof v === 'string' ? ascii(v).slice(0, 8000) : v);
      } catch {
        // a key or value grpc-js will not send: nothing reaches the server
      }
    }
    return md;
  };

  beforeAll(async () => {
    t = await startFuzzTarget(pg.url);
    steady = await startSteadySite(t.cp);
    keys.gw = await makeKey(t.cp.http, { role: 'agent', site: GW_SITE });
    keys['gw-second'] = await makeKey(t.cp.http, { role: 'agent', site: GW_SITE, name: 'agent-fuzz-gw-second' });
    // connections of their own, as a real client's are: grpc-js would otherwise share one HTTP/2
    // connection among every client of the process, the agents' streams included
    const own = { 'grpc.use_local_subchannel_pool': 1 };
    fleet = new FleetClient(t.cp.grpc, credentials.createInsecure(), own);
    raw = new Client(t.cp.grpc, credentials.createInsecure(), own);
    gateway = new AgentGatewayClient(t.cp.grpc, credentials.createInsecure(), own);
  });

  afterAll(async () => {
    fleet?.close();
    raw?.close();
    gateway?.close();
    await steady?.close();
    await t?.close();
  });

  /** no case may take down another site's agent stream */
  const othersUp = (what: string) => {
    expect(t.cp.proc.child.exitCode, what).toBeNull();
    expect(t.agentEnded(), `fuzz-1's stream ended during: ${what}`).toBeNull();
    expect(steady.streamEnded(), `the steady site's stream ended during: ${what}`).toBeNull();
  };

  /**
   * puts a command for the site on the bus (an ArmGridTrip to its default), so a watch of it has
   * something to deliver: mining calls state claims, and a site whose ASICs report nothing gets no
   * reconciler commands
   */
  const nudge = async (site: string) => {
    await fetch(`${t.cp.http}/api/v1/sites/${encodeURIComponent(site)}/grid-trip`, {
      method: 'PUT', headers: { 'content-type': 'application/json', authorization: `Bearer ${t.keys.admin}` }, body: JSON.stringify({ default: true }),
    }).catch(() => {});
  };

  const callFleet = (c: FleetCall, md: Metadata) =>
    new Promise<ServiceError | null>((resolve) => {
      const cb = (err: ServiceError | null) => resolve(err);
      const opts = { deadline: deadline() };
      // the generated client's methods, by name
      (fleet[c.method] as (r: unknown, md: Metadata, o: unknown, cb: (e: ServiceError | null) => void) => void).call(fleet, c.request, md, opts, cb);
    });

  it('ends every Fleet call OK or with a reasoned status', { timeout: fuzzTestTimeout(60_000) }, async () => {
    const start = t.mark();
    const stats = tally();
    const auth = fc.oneof({ weight: 4, arbitrary: fc.constant<AuthChoice>('admin') }, { weight: 4, arbitrary: authChoice(['operator', 'viewer', 'customer', 'agent', 'feed', 'none', 'unknown', 'malformed']) });
    await fc.assert(
      fc.asyncProperty(fleetCall, auth, extraMetadata, async (c, a, extra) => {
        const err = await callFleet(c, metadataFor(a, extra));
        const what = `${c.method} ${clip(JSON.stringify(c.request), 300)} as ${a}`;
        stats.note(c.method, err);
        checkStatus(what, err);
        othersUp(what);
      }),
      fuzzParams(1200, 60_000),
    );
    stats.print();
    t.assertHealthy(start);
  });

  it('refuses a WatchCommands stream with a reasoned status, or delivers its site’s commands', { timeout: fuzzTestTimeout(60_000) }, async () => {
    const start = t.mark();
    const admin = new Metadata();
    admin.set('authorization', `Bearer ${t.keys.admin}`);
    const auth = fc.oneof({ weight: 3, arbitrary: authChoice(['admin', 'viewer', 'operator']) }, { weight: 2, arbitrary: authChoice(['customer', 'agent', 'feed', 'none', 'unknown', 'malformed']) });
    await fc.assert(
      fc.asyncProperty(watchRequest, auth, extraMetadata, async (req, a, extra) => {
        const call = fleet.watchCommands(req, metadataFor(a, extra), { deadline: deadline() });
        let got: CommandView | null = null;
        let ended: StatusObject | null = null;
        call.on('data', (v: CommandView) => (got ??= v));
        call.on('status', (s: StatusObject) => (ended = s));
        call.on('error', () => {});
        const site = req.site || FUZZ_SITE;
        try {
          // until the watch is refused or a command of its site arrives: submit one now and then
          await waitFor(
            async () => {
              if (ended || got) return true;
              await nudge(site);
              return ended || got;
            },
            { timeoutMs: 10_000, intervalMs: 100, message: `watch ${JSON.stringify(req)} as ${a}: refused or delivering` },
          );
        } finally {
          call.cancel();
        }
        const what = `watch ${JSON.stringify(req)} as ${a}`;
        // a watch of every site ('') may see another site's command first
        if (got && req.site) expect((got as CommandView).site, what).toBe(site);
        else checkStatus(what, ended);
        othersUp(what);
      }),
      fuzzParams(200, 60_000),
    );
    t.assertHealthy(start);
  });

  it('ends a call of raw bytes to any method path OK or with a reasoned status', { timeout: fuzzTestTimeout(40_000) }, async () => {
    const start = t.mark();
    const id = (b: Buffer) => b;
    const path = fc.oneof(
      { weight: 5, arbitrary: fc.constantFrom<string>(...METHOD_PATHS) },
      { weight: 2, arbitrary: fc.constantFrom('/hcp.v1.Fleet/WatchCommands', '/hcp.v1.AgentGateway/Connect') },
      { weight: 1, arbitrary: fc.constantFrom<string>(...UNKNOWN_PATHS) },
    );
    const auth = fc.oneof({ weight: 3, arbitrary: authChoice(['admin', 'gw']) }, { weight: 1, arbitrary: authChoice(['viewer', 'none', 'unknown']) });
    await fc.assert(
      fc.asyncProperty(path, fc.array(garbage, { minLength: 1, maxLength: 3 }), auth, async (p, frames, a) => {
        const md = metadataFor(a, []);
        const what = `${p} as ${a} with ${frames.map((f) => f.subarray(0, 32).toString('hex')).join(' | ')}`;
        const unknownMethod = (UNKNOWN_PATHS as readonly string[]).includes(p);
        const ended = await new Promise<StatusObject>((resolve) => {
          if (p === '/hcp.v1.AgentGateway/Connect') {
            const call = raw.makeBidiStreamRequest(p, id, id, md, { deadline: deadline() });
            call.on('status', resolve);
            call.on('data', () => {});
            call.on('error', () => {});
            for (const f of frames) call.write(f);
            call.end();
          } else if (p === '/hcp.v1.Fleet/WatchCommands') {
            // an accepted watch stays open and delivers commands: fuzz-1 gets some until it does
            // (bytes that decode to another site's name would never see one; they do not occur)
            const call = raw.makeServerStreamRequest(p, id, id, frames[0]!, md, { deadline: deadline() });
            let got = false;
            let ended: StatusObject | null = null;
            call.on('data', () => (got = true));
            call.on('error', () => {});
            call.on('status', (s: StatusObject) => (ended = s));
            void waitFor(
              async () => {
                if (!got && !ended) await nudge(FUZZ_SITE);
                return got || ended;
              },
              { timeoutMs: 10_000, intervalMs: 100, message: `${what}: refused or delivering` },
            ).then(
              () => {
                call.cancel();
                resolve(got ? { code: status.OK, details: 'delivering', metadata: new Metadata() } : ended!);
              },
              (err: Error) => resolve({ code: status.DEADLINE_EXCEEDED, details: err.message, metadata: new Metadata() }),
            );
          } else {
            raw.makeUnaryRequest(p, id, id, frames[0]!, md, { deadline: deadline() }, (err) => resolve(err ?? { code: status.OK, details: '', metadata: new Metadata() }));
          }
        });
        checkStatus(what, ended, { unknownMethod });
        othersUp(what);
      }),
      fuzzParams(500, 40_000),
    );
    t.assertHealthy(start);
  });

  it('ends every AgentGateway/Connect stream OK or with a reasoned status, and leaves the other sites’ streams up', { timeout: fuzzTestTimeout(90_000) }, async () => {
    const start = t.mark();
    const stats = tally();
    await fc.assert(
      fc.asyncProperty(connectCase, async (c) => {
        const call = gateway.connect(metadataFor(c.auth, c.extra), { deadline: deadline() });
        const received: ControlMessage[] = [];
        const ended = new Promise<StatusObject>((resolve) => call.on('status', resolve));
        call.on('data', (m: ControlMessage) => received.push(m));
        call.on('error', () => {});
        let status_: StatusObject | null = null;
        void ended.then((x) => (status_ = x));
        call.write(c.first);
        if (c.waitAck && c.first.body?.$case === 'hello') await waitFor(() => status_ || received.length > 0, { timeoutMs: 20_000, message: 'HelloAck or refusal' });
        for (const m of c.rest) call.write(m);
        // half-close: the server reads every message before the end, so the status comes after all of them
        call.end();
        const s = await ended;
        const what = `Connect as ${c.auth}: ${clip(JSON.stringify([c.first, ...c.rest]), 1500)}`;
        stats.note(`Connect ${received.some((m) => m.body?.$case === 'helloAck') ? 'acked' : 'not-acked'}`, s);
        checkStatus(what, s);
        othersUp(what);
        // once it has ended, the stream is nobody's: the open streams are fuzz-1's and the steady site's
        await waitFor(async () => (await t.metrics()).get('hcp_agent_streams') === 2, { timeoutMs: 10_000, intervalMs: 10, message: `${what}: the ended stream was let go (hcp_agent_streams back to 2)` });
      }),
      fuzzParams(400, 90_000),
    );
    stats.print();
    t.assertHealthy(start);
  });

  it("kept the steady site's telemetry landing throughout", { timeout: 60_000 }, async () => {
    expect(t.agentEnded()).toBeNull();
    expect(steady.streamEnded()).toBeNull();
    const { batches } = await steady.stopAndVerify(pg.url, () => logProblems(t.cp.proc.lines));
    expect(batches).toBeGreaterThan(0);
    t.assertHealthy();
  });
});

