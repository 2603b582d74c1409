// Price ticks (the price_data time series): written in batches with one unnest statement, read
// back (through Drizzle) for the API and, at start, to know the latest price of every feed.
import { and, desc, eq, gt, gte, lte, sql } from 'drizzle-orm';
import type { Db } from './client.js';
import { priceData } from './schema.js';

export interface PriceRow {
  timeMs: number;
  /** 'btc_usd' | 'power' | 'gpu_spot' */
  feed: string;
  /** power prices are per site; null for fleet-wide feeds */
  siteId: string | null;
  price: number;
  source: string;
}

export async function insertPrices(db: Db, rows: PriceRow[]): Promise<void> {
  if (rows.length === 0) return;
  await db.query(
    `INSERT INTO price_data (time, feed, site_id, price, source)
     SELECT to_timestamp(t / 1000.0), f, nullif(s, ''), p, src
     FROM unnest($1::float8[], $2::text[], $3::text[], $4::float8[], $5::text[]) AS r(t, f, s, p, src)`,
    [rows.map((r) => r.timeMs), rows.map((r) => r.feed), rows.map((r) => r.siteId ?? ''), rows.map((r) => r.price), rows.map((r) => r.source)],
  );
}

const tick = (r: { time: Date; feed: string; siteId: string | null; price: number; source: string }): PriceRow => ({
  timeMs: r.time.getTime(), feed: r.feed, siteId: r.siteId, price: r.price, source: r.source,
});

export async function queryPrices(
  db: Pick<Db, 'orm'>,
  q: { feed?: string; site?: string; fromMs: number; toMs: number; limit: number },
): Promise<PriceRow[]> {
  const rows = await db.orm
    .select()
    .from(priceData)
    .where(and(
      gte(priceData.time, new Date(q.fromMs)),
      lte(priceData.time, new Date(q.toMs)),
      q.feed === undefined ? undefined : eq(priceData.feed, q.feed),
      q.site === undefined ? undefined : eq(priceData.siteId, q.site),
    ))
    .orderBy(desc(priceData.time))
    .limit(q.limit);
  return rows.map(tick);
}

/** the newest tick of every feed (and site), to start with what was known */
export async function latestPrices(db: Pick<Db, 'orm'>): Promise<PriceRow[]> {
  const rows = await db.orm
    .selectDistinctOn([priceData.feed, priceData.siteId])
    .from(priceData)
    .where(gt(priceData.time, sql`now() - interval '7 days'`))
    .orderBy(priceData.feed, priceData.siteId, desc(priceData.time));
  return rows.map(tick);
}
