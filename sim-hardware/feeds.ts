// Publishes simulated (or replayed) market ticks and grid frequency on MQTT, on a timer driven
// by the sim clock. Topics and payloads come from proto/market-topics.ts:
//   hcp/v1/market/btc_usd, hcp/v1/market/power/<site>, hcp/v1/market/gpu_spot  { ts, price }
//   hcp/v1/grid/<region>/frequency                                                { ts, hz }
//
// Wiring: feeds-main.ts builds the clock, sources and MQTT client from feeds-config.ts and hands
// them here; scripts/start.ts can run feeds-main as a child process (or call createFeedPublisher
// in-process with the control plane's broker URL). The client is the caller's: close() stops the
// timer and waits for in-flight publishes, it does not end the connection.
import type { MqttClient } from 'mqtt';
import { encodeFrequency, encodePrice, marketTopics } from '../proto/market-topics.js';
import type { GridSource } from './grid.js';
import type { MarketTick, TickSource } from './market.js';

export interface FeedPublisherOptions {
  client: MqttClient;
  /** null = no market feed here (prices come from whoever else publishes them) */
  market: TickSource | null;
  grid: GridSource | null;
  /** real milliseconds between polls of the sources; default 100 */
  pollMs?: number;
  /** called for a failed publish; the tick is dropped (a live feed, not a ledger) */
  onError?: (err: Error) => void;
}

export interface FeedCounts {
  market: number;
  grid: number;
  /** ticks dropped because the client was offline or the publish failed */
  dropped: number;
}

export interface FeedPublisher {
  /** polls the sources once and publishes what fell due; the timer calls this */
  tick(): Promise<void>;
  counts(): FeedCounts;
  /** idempotent */
  close(): Promise<void>;
}

export function marketTopicOf(t: MarketTick): string {
  if (t.feed === 'btc_usd') return marketTopics.btcUsd;
  if (t.feed === 'gpu_spot') return marketTopics.gpuSpot;
  return marketTopics.power(t.site ?? '');
}

export function createFeedPublisher(o: FeedPublisherOptions): FeedPublisher {
  const counts: FeedCounts = { market: 0, grid: 0, dropped: 0 };
  let inFlight: Promise<void> = Promise.resolve();
  let closed = false;

  const publish = async (topic: string, payload: string, kind: 'market' | 'grid'): Promise<void> => {
    // mqtt.js would queue offline publishes without bound; at a fast sim clock that is a leak.
    if (!o.client.connected) {
      counts.dropped++;
      return;
    }
    try {
      await o.client.publishAsync(topic, payload, { qos: 1 });
      counts[kind]++;
    } catch (err) {
      counts.dropped++;
      o.onError?.(err as Error);
    }
  };

  const pollOnce = async (): Promise<void> => {
    const jobs: Array<Promise<void>> = [];
    for (const t of o.market?.poll() ?? []) jobs.push(publish(marketTopicOf(t), encodePrice({ ts: t.ts, price: t.price }), 'market'));
    for (const r of o.grid?.poll() ?? []) jobs.push(publish(marketTopics.gridFrequency(r.region), encodeFrequency({ ts: r.ts, hz: r.hz }), 'grid'));
    await Promise.all(jobs);
  };

  // Polls run one after another: a slow broker delays the next poll instead of piling them up.
  const tick = (): Promise<void> => {
    if (closed) return inFlight;
    inFlight = inFlight.then(pollOnce);
    return inFlight;
  };
  const timer = setInterval(() => void tick(), o.pollMs ?? 100);
  timer.unref();

  let closing: Promise<void> | null = null;
  return {
    tick,
    counts: () => ({ ...counts }),
    close() {
      closing ??= (async () => {
        closed = true;
        clearInterval(timer);
        await inFlight;
      })();
      return closing;
    },
  };
}
