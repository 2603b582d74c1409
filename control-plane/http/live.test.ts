// The live stream's bounded queue: a client that does not read (the body is never pulled) is
// dropped once its queue is full, counted, and the others go on hearing.
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { EventStream } from '../events.js';
import { createMetrics } from '../metrics.js';
import { Registry } from '../registry/registry.js';
import { createLiveStreams } from './live.js';

const admin = { keyId: 'key_1', name: 'a', role: 'admin' as const, customerId: null, siteId: null };

it('drops a stream whose client does not read, once its queue is full, and counts it', async () => {
  const events = new EventStream();
  const metrics = createMetrics();
  const live = createLiveStreams({ events, registry: new Registry({ staleAfterMs: 10_000 }), metrics, log: pino({ level: 'silent' }), limits: { maxStreams: 10, queue: 20, heartbeatMs: 60_000 } });
  try {
    const slow = live.open(admin, { site: null })!;
    const reader = live.open(admin, { site: null })!.body!.getReader();
    expect(live.count()).toBe(2);
    const heard: string[] = [];
    const read = (async () => {
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        heard.push(dec.decode(value));
      }
    })();
    for (let i = 0; i < 50; i++) {
      events.emit('grid.frequency', { region: 'ercot', hz: 60 - i / 1000 });
      await new Promise((r) => setImmediate(r));
    }
    expect(live.count()).toBe(1);
    expect((await metrics.registry.getSingleMetricAsString('hcp_console_stream_dropped_total'))).toMatch(/reason="slow_client"} 1/);
    expect(heard.join('').match(/event: grid.frequency/g)?.length).toBe(50);
    expect(slow.body).toBeTruthy();
    live.close();
    await read;
  } finally {
    live.close();
  }
});

it('says an audit write once, to the keys that may read the audit log, and not to a customer', async () => {
  const events = new EventStream();
  const live = createLiveStreams({ events, registry: new Registry({ staleAfterMs: 10_000 }), metrics: createMetrics(), log: pino({ level: 'silent' }), limits: { maxStreams: 10, queue: 20, heartbeatMs: 60_000 } });
  const viewer = { ...admin, keyId: 'key_2', name: 'v', role: 'viewer' as const };
  const customer = { ...admin, keyId: 'key_3', name: 'c', role: 'customer' as const, customerId: 'cust-001' };
  const readers = [admin, viewer, customer].map((p) => live.open(p, { site: null })!.body!.getReader());
  const heard = readers.map(() => '');
  const reads = readers.map(async (r, i) => {
    const dec = new TextDecoder();
    for (;;) {
      const { value, done } = await r.read();
      if (done) return;
      heard[i] += dec.decode(value);
    }
  });
  try {
    const at = Date.parse('2026-12-03T08:00:00Z');
    events.emit('audit.written', { entries: [] });
    events.emit('audit.written', {
      entries: [
        { actor: 'key:ops', action: 'claim.set', subject: 'clm-1', site: 'texas-2', timeMs: at - 5 },
        { actor: 'system:reconciler', action: 'command.submitted', subject: 'cmd-1', site: 'texas-2', timeMs: at },
        { actor: 'key:ops', action: 'key.created', subject: 'key_9', site: null, timeMs: at - 9 },
      ],
    });
    await new Promise((r) => setImmediate(r));
    const said = (s: string) => s.split('\n\n').filter((f) => f.includes('event: audit\n')).map((f) => JSON.parse(f.slice(f.indexOf('data: ') + 6)));
    for (const s of [heard[0]!, heard[1]!]) {
      expect(said(s)).toEqual([{ count: 3, actions: ['claim.set', 'command.submitted', 'key.created'], sites: ['texas-2'], at: new Date(at).toISOString() }]);
    }
    expect(said(heard[2]!)).toEqual([]);
  } finally {
    live.close();
    await Promise.all(reads);
  }
});
