import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFrequency, decodePrice, marketTopics, parseMarketTopic } from '../proto/market-topics.js';
import { collect, KEYS, startBroker, type TestBroker } from '../test/harness/mqtt-broker.js';
import { waitFor } from '../test/harness/wait-for.js';
import { feedsClientOptions, loadFeedsConfig } from './feeds-config.js';
import { createManualClock } from './clock.js';
import { createFeedPublisher } from './feeds.js';
import { createLiveGrid } from './grid.js';
import { createLiveMarket } from './market.js';

const START = Date.parse('2025-06-01T00:00:00Z');

describe('feed publisher against a real broker', () => {
  let aedes: Aedes;
  let server: Server;
  let url: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    aedes = await Aedes.createBroker();
    server = createServer(aedes.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    url = `mqtt://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()));
    server.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
  });

  const connect = async (id: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(url, { clientId: id, reconnectPeriod: 0 });
    clients.push(c);
    return c;
  };

  it('publishes { ts, price } and { ts, hz } on the market and grid topics', async () => {
    const sub = await connect('sub');
    const got: Array<{ topic: string; payload: string }> = [];
    sub.on('message', (topic, payload) => got.push({ topic, payload: payload.toString() }));
    await sub.subscribeAsync([marketTopics.allMarket, marketTopics.allGrid], { qos: 1 });

    const clock = createManualClock(START);
    const sites = [
      { id: 'texas-1', utcOffsetHours: -6 },
      { id: 'canada-1', utcOffsetHours: -5 },
    ];
    const market = createLiveMarket({ seed: 1, clock, sites });
    const grid = createLiveGrid({ seed: 1, clock, regions: ['ercot', 'ieso'], events: [{ region: 'ercot', at: 30, hz: 59.6, duration_s: 10 }] });
    const pubClient = await connect('feeds');
    const pub = createFeedPublisher({ client: pubClient, market, grid, pollMs: 10 });

    clock.advance(60_000); // 7 BTC ticks, 1 power tick per site, 2 GPU ticks; grid incl. the event start
    // 11 market ticks; grid: the ercot event start plus one reading now per region.
    await waitFor(() => pub.counts().market === 11 && pub.counts().grid === 3 && got.length === 14, { message: 'ticks delivered' });
    await pub.close();
    await pub.close(); // idempotent

    const byTopic = (t: string) => got.filter((m) => m.topic === t);
    expect(byTopic('hcp/v1/market/btc_usd')).toHaveLength(7);
    expect(byTopic('hcp/v1/market/power/texas-1')).toHaveLength(1);
    expect(byTopic('hcp/v1/market/power/canada-1')).toHaveLength(1);
    expect(byTopic('hcp/v1/market/gpu_spot')).toHaveLength(2);
    for (const m of got) {
      const kind = parseMarketTopic(m.topic)?.kind;
      expect(kind).toBeDefined();
      if (kind === 'grid_frequency') expect(decodeFrequency(m.payload)).not.toBeNull();
      else expect(decodePrice(m.payload)).not.toBeNull();
      expect(Object.keys(JSON.parse(m.payload))).toEqual(kind === 'grid_frequency' ? ['ts', 'hz'] : ['ts', 'price']);
    }
    const power = decodePrice(byTopic('hcp/v1/market/power/texas-1')[0]!.payload)!;
    expect(power.ts).toBe('2025-06-01T00:00:00.000Z');
    expect(power.price).toBeGreaterThanOrEqual(0.03);
    const ercot = byTopic('hcp/v1/grid/ercot/frequency').map((m) => decodeFrequency(m.payload)!);
    expect(ercot.find((r) => r.hz === 59.6)?.ts).toBe('2025-06-01T00:00:30.000Z');
    expect(byTopic('hcp/v1/grid/ieso/frequency').every((m) => Math.abs(decodeFrequency(m.payload)!.hz - 60) <= 0.01)).toBe(true);

    // After close nothing more is published.
    const before = pub.counts().market;
    clock.advance(600_000);
    await pub.tick();
    expect(pub.counts().market).toBe(before);
  });

  it('drops ticks while offline instead of queueing them', async () => {
    const clock = createManualClock(START);
    const c = mqtt.connect('mqtt://127.0.0.1:1', { reconnectPeriod: 0, connectTimeout: 200 });
    c.on('error', () => {});
    const pub = createFeedPublisher({ client: c, market: createLiveMarket({ seed: 1, clock, sites: [] }), grid: null, pollMs: 1000 });
    await pub.tick();
    expect(pub.counts()).toEqual({ market: 0, grid: 0, dropped: 2 });
    await pub.close();
    c.end(true);
  });
});

describe('feeds on the embedded broker', () => {
  let b: TestBroker;
  afterAll(() => b?.close());

  it('log in with a feed key and publish; anonymous feeds are refused there', async () => {
    b = await startBroker({ anonymous: false });
    const reader = await b.connect(KEYS.viewer);
    const { got } = await collect(reader, marketTopics.allGrid);
    const config = loadFeedsConfig(['--mqtt', b.url, '--username', KEYS.feed.username], { HCP_FEEDS_TOKEN: KEYS.feed.secret });
    const client = await mqtt.connectAsync(config.mqttUrl, { ...feedsClientOptions(config), reconnectPeriod: 0 }, false);
    const clock = createManualClock(START);
    const pub = createFeedPublisher({ client, market: null, grid: createLiveGrid({ seed: 1, clock, regions: ['ercot'], events: [] }), pollMs: 10 });
    await waitFor(() => got.length > 0, { message: 'a frequency reading from the logged-in feeds' });
    expect(got[0]!.topic).toBe('hcp/v1/grid/ercot/frequency');
    await pub.close();
    await client.endAsync();
    const anonymous = loadFeedsConfig(['--mqtt', b.url], {});
    await expect(mqtt.connectAsync(anonymous.mqttUrl, { ...feedsClientOptions(anonymous), reconnectPeriod: 0 }, false)).rejects.toMatchObject({ code: 5 });
  });
});

