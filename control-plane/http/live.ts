// The console's live stream: GET /api/v1/events, Server-Sent Events (text/event-stream) fed from
// the control plane's typed event stream (events.ts) and a fleet summary pushed at most once a
// second, so a page stays live without polling every endpoint (docs/console.md).
//
// Who hears what is decided per event from the caller's role (auth/roles.ts): fleet events
// (sites, commands, claims, audit writes, grid, the summary) need fleet.read; workload events need
// workloads.read, and a customer hears only its own customer's workloads. Every stream has a
// bounded queue: a client that reads slower than events arrive (its queue is full) is dropped and
// counted (hcp_console_stream_dropped_total{reason="slow_client"}), never buffered without end.
// Open streams are capped (HCP_EVENTS_MAX_STREAMS: 503 past it); a comment line every
// HCP_EVENTS_HEARTBEAT_MS keeps proxies from closing an idle stream and lets the client notice a
// dead one.
import type { Logger } from 'pino';
import { can, type Principal } from '../auth/roles.js';
import { claimView } from '../claims/views.js';
import { commandView } from '../commands/views.js';
import type { EventStream } from '../events.js';
import type { Metrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { HttpDeps } from './deps.js';
import { deviceView, statusView } from './views.js';

export interface LiveLimits {
  maxStreams: number;
  /** events queued per stream before it is dropped */
  queue: number;
  heartbeatMs: number;
  /** the fleet summary's period (at least 1000) */
  summaryMs?: number;
}

export interface LiveDeps {
  events: EventStream;
  registry: Registry;
  metrics: Metrics;
  log: Logger;
  market?: HttpDeps['market'];
  grid?: HttpDeps['grid'];
  economics?: HttpDeps['economics'];
  mode?: (siteId: string) => string;
  limits: LiveLimits;
}

/** what one event needs of its listener */
type Audience = { perm: 'fleet.read' } | { perm: 'workloads.read'; customerId: string | null } | { site: string };

interface Conn {
  p: Principal;
  site: string | null;
  queue: string[];
  wake: (() => void) | null;
  closed: boolean;
  end(reason: string | null): void;
}

export interface LiveStreams {
  /** a stream for this caller, or null at the connection cap */
  open(p: Principal, o: { site: string | null; signal?: AbortSignal }): Response | null;
  count(): number;
  close(): void;
}

const enc = new TextEncoder();

/** a site's live power, GPUs and ASICs apart (the fleet power chart stacks them) */
function powerByKind(registry: Registry, siteId: string) {
  let gpu = 0, asic = 0;
  for (const dv of registry.devicesOf(siteId)) {
    if (!dv.online) continue;
    if (dv.kind === 'gpu' && dv.gpu) gpu += dv.gpu.powerW;
    else if (dv.kind === 'asic' && dv.asic) asic += dv.asic.powerW;
  }
  return { gpu_power_w: Math.round(gpu), asic_power_w: Math.round(asic) };
}

export function createLiveStreams(d: LiveDeps): LiveStreams {
  const conns = new Set<Conn>();
  let seq = 0;
  /** workload → customer, learnt from the rows the events carry (a pending workload always has one) */
  const customerOf = new Map<string, string>();

  const hears = (c: Conn, a: Audience): boolean => {
    if ('site' in a) return c.site === a.site && can(c.p, 'fleet.read');
    if (a.perm === 'fleet.read') return can(c.p, 'fleet.read');
    if (!can(c.p, 'workloads.read')) return false;
    // a customer key hears only its own customer's workloads; one whose customer is unknown is not said
    if (c.p.role === 'customer') return a.customerId !== null && a.customerId === c.p.customerId;
    return true;
  };

  const frame = (name: string, data: unknown) => `id: ${++seq}\nevent: ${name}\ndata: ${JSON.stringify(data)}\n\n`;

  const push = (c: Conn, text: string) => {
    if (c.closed) return;
    if (c.queue.length >= d.limits.queue) {
      d.metrics.consoleStreamDropped.inc({ reason: 'slow_client' });
      d.log.warn({ key: c.p.name, queued: c.queue.length }, 'live stream dropped: the client reads too slowly');
      c.end('slow_client');
      return;
    }
    c.queue.push(text);
    d.metrics.consoleStreamEvents.inc();
    const w = c.wake;
    c.wake = null;
    w?.();
  };

  const say = (name: string, a: Audience, data: () => unknown) => {
    let text: string | null = null;
    for (const c of conns) {
      if (!hears(c, a)) continue;
      text ??= frame(name, data());
      push(c, text);
    }
  };

  const fleet: Audience = { perm: 'fleet.read' };
  const unhear = [
    d.events.on('site.connected', (e) => say('site', fleet, () => ({ site: e.siteId, connected: true }))),
    d.events.on('site.disconnected', (e) => say('site', fleet, () => ({ site: e.siteId, connected: false }))),
    d.events.on('command.changed', (e) => say('command', fleet, () => commandView(e.record))),
    d.events.on('claim.changed', (e) => say('claim', fleet, () => ({ change: e.change, claim: claimView(e.claim) }))),
    // once per write of the audit writer (a batch each 50 ms), not per entry: a fleet-wide
    // curtail writes two entries a site. The console reads the entries from GET /api/v1/audit.
    d.events.on('audit.written', ({ entries }) => {
      if (!entries.length) return;
      say('audit', fleet, () => ({
        count: entries.length,
        actions: [...new Set(entries.map((x) => x.action))].slice(0, 50),
        sites: [...new Set(entries.flatMap((x) => (x.site ? [x.site] : [])))].slice(0, 50),
        at: new Date(entries.reduce((m, x) => Math.max(m, x.timeMs), 0)).toISOString(),
      }));
    }),
    d.events.on('grid.frequency', (e) => say('grid.frequency', fleet, () => ({ region: e.region, hz: e.hz, at: new Date().toISOString() }))),
    d.events.on('agent.grid_trip', (e) => say('grid.trip', fleet, () => ({ site: e.siteId, ...e.fired }))),
    d.events.on('workload.changed', (e) => {
      if (e.row) customerOf.set(e.workloadId, e.row.customer_id);
      const customerId = customerOf.get(e.workloadId) ?? null;
      say('workload', { perm: 'workloads.read', customerId }, () => ({ id: e.workloadId, from: e.from, to: e.to, site: e.siteId, reason: e.reason, customer_id: customerId }));
      if (['completed', 'failed', 'cancelled'].includes(e.to)) customerOf.delete(e.workloadId);
      if (customerOf.size > 100_000) customerOf.delete(customerOf.keys().next().value!);
    }),
  ];

  const summary = () => {
    const status = statusView(d.registry);
    return {
      ...status,
      sites: status.sites.map((s) => ({
        ...s,
        ...powerByKind(d.registry, s.id),
        mode: d.mode?.(s.id) ?? null,
        decision: d.economics?.dispatch.lastDecision(s.id) ?? null,
      })),
      prices: d.market?.book.view() ?? null,
      grid: d.grid?.view() ?? null,
      at: new Date().toISOString(),
    };
  };

  const tick = setInterval(() => {
    if (!conns.size) return;
    say('fleet', fleet, summary);
    // a site's devices, to the streams that asked for that site (?site=), once a second
    const wanted = new Set([...conns].map((c) => c.site).filter((x): x is string => x !== null));
    for (const site of wanted) say('devices', { site }, () => ({ site, devices: d.registry.devices({ site }).map(deviceView) }));
  }, Math.max(1000, d.limits.summaryMs ?? 1000));
  tick.unref();
  const beat = setInterval(() => {
    for (const c of conns) push(c, `: heartbeat ${new Date().toISOString()}\n\n`);
  }, d.limits.heartbeatMs);
  beat.unref();

  return {
    open(p, o) {
      if (conns.size >= d.limits.maxStreams) {
        d.metrics.consoleStreamDropped.inc({ reason: 'over_cap' });
        return null;
      }
      let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
      const c: Conn = {
        p, site: o.site, queue: [], wake: null, closed: false,
        end(reason) {
          if (c.closed) return;
          c.closed = true;
          conns.delete(c);
          d.metrics.consoleStreams.set(conns.size);
          c.queue.length = 0;
          const w = c.wake;
          c.wake = null;
          w?.();
          if (reason) {
            try {
              controller?.enqueue(enc.encode(frame('bye', { reason })));
              controller?.close();
            } catch {
              /* already closed by the client */
            }
          }
        },
      };
      conns.add(c);
      d.metrics.consoleStreams.set(conns.size);
      o.signal?.addEventListener('abort', () => c.end(null), { once: true });
      // first: who the stream is for, and a summary right away (the page need not wait a second)
      push(c, `retry: 2000\n${frame('hello', { role: p.role, customer_id: p.customerId, key: p.name, site: o.site, heartbeat_ms: d.limits.heartbeatMs })}`);
      if (can(p, 'fleet.read')) {
        push(c, frame('fleet', summary()));
        if (o.site) push(c, frame('devices', { site: o.site, devices: d.registry.devices({ site: o.site }).map(deviceView) }));
      }
      const body = new ReadableStream<Uint8Array>({
        start(ctl) {
          controller = ctl;
        },
        // pulled when the socket wants more: a slow client stops pulling, so its queue grows
        async pull(ctl) {
          while (!c.closed && c.queue.length === 0) await new Promise<void>((r) => (c.wake = r));
          if (c.closed) {
            try {
              ctl.close();
            } catch {
              /* closed */
            }
            return;
          }
          ctl.enqueue(enc.encode(c.queue.splice(0, c.queue.length).join('')));
        },
        cancel() {
          c.end(null);
        },
      }, { highWaterMark: 1 });
      return new Response(body, {
        status: 200,
        headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', connection: 'keep-alive' },
      });
    },
    count: () => conns.size,
    close() {
      clearInterval(tick);
      clearInterval(beat);
      unhear.forEach((off) => off());
      for (const c of [...conns]) c.end('shutdown');
    },
  };
}
