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
