// Market and grid feeds from MQTT (proto/market-topics.ts), whoever publishes them: the sim
// feeds process, mosquitto_pub, a real price adapter. Prices go to the price book at once and to
// price_data in batches; frequency readings are said as grid.frequency on the event stream
// (control-plane/events.ts), which the grid response hears. A malformed payload is
// counted by reason and logged (rate-limited), never thrown.
import type { Logger } from 'pino';
import { decodeFrequency, decodePrice, parseMarketTopic } from '../../proto/market-topics.js';
import { createBatchWriter } from '../db/batch-writer.js';
import type { Db } from '../db/client.js';
import type { EventStream } from '../events.js';
import { insertPrices, type PriceRow } from '../db/price-store.js';
import type { Metrics } from '../metrics.js';
import type { PriceBook } from './price-book.js';

export interface FeedIngestDeps {
  db: Db;
  book: PriceBook;
  metrics: Metrics;
  log: Logger;
  /** frequency readings are said here as grid.frequency */
  events: EventStream;
  onPrice?(feed: string, site: string | null): void;
  flushMs?: number;
}

const MAX_BUFFERED = 50_000;

export function createFeedIngest(d: FeedIngestDeps) {
  const lastWarn = new Map<string, number>();
  const reject = (reason: string, topic: string) => {
    d.metrics.feedRejected.inc({ reason });
    const now = Date.now();
    if ((lastWarn.get(reason) ?? 0) + 10_000 <= now) {
      lastWarn.set(reason, now);
      d.log.warn({ topic, reason }, 'feed message dropped');
    }
  };

  // price_data written behind in batches (control-plane/db/batch-writer.ts): a tick the database
  // refuses is dead-lettered, the others land; past MAX_BUFFERED waiting ticks (the database
  // away) the oldest are dropped and counted as buffer_full. The price book has them already.
  const prices = createBatchWriter<PriceRow>({
    name: 'price_data',
    log: d.log,
    write: (rows) => insertPrices(d.db, rows),
    identify: (r) => ({ feed: r.feed, site: r.siteId }),
    flushIntervalMs: d.flushMs ?? 500,
    maxBuffered: MAX_BUFFERED,
    metrics: {
      rejected: (n) => {
        d.metrics.feedRejected.inc({ reason: 'db_rejected' }, n);
        d.metrics.dbRejectedRows.inc({ writer: 'price_data' }, n);
      },
      dropped: (n) => d.metrics.feedRejected.inc({ reason: 'buffer_full' }, n),
    },
  });
  const flush = () => prices.flush();

  return {
    /** true when the topic is a market or grid feed (and was handled) */
    handle(topic: string, payload: Buffer): boolean {
      const t = parseMarketTopic(topic);
      if (!t) return false;
      const now = Date.now();
      if (t.kind === 'grid_frequency') {
        const r = decodeFrequency(payload);
        if (!r) return reject('malformed_frequency', topic), true;
        d.metrics.feedMessages.inc({ feed: 'grid_frequency' });
        d.events.emit('grid.frequency', { region: t.region, hz: r.hz });
        return true;
      }
      const p = decodePrice(payload);
      if (!p) return reject('malformed_price', topic), true;
      // A price of a million dollars per kWh is a unit error, not a spike (ERCOT's cap is $5/kWh).
      if (t.kind === 'btc_usd' && !(p.price > 0 && p.price < 10_000_000)) return reject('price_out_of_range', topic), true;
      if (t.kind === 'gpu_spot' && !(p.price >= 0 && p.price < 1_000)) return reject('price_out_of_range', topic), true;
      if (t.kind === 'power' && !(p.price > -10 && p.price < 100)) return reject('price_out_of_range', topic), true;
      const site = t.kind === 'power' ? t.site : null;
      const tsMs = Date.parse(p.ts);
      d.book.set(t.kind, site, { price: p.price, tsMs, receivedAtMs: now });
      d.metrics.feedMessages.inc({ feed: t.kind });
      prices.add({ timeMs: tsMs, feed: t.kind, siteId: site, price: p.price, source: 'mqtt' });
      d.onPrice?.(t.kind, site);
      return true;
    },
    flush,
    async close(): Promise<void> {
      await prices.close();
    },
  };
}

export type FeedIngest = ReturnType<typeof createFeedIngest>;
