// Price ticks (the price_data time series): written in batches with one unnest statement, read
// back for the API and, at start, to know the latest price of every feed.
import type { Db } from './client.js';

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

export async function queryPrices(
  db: Db,
  q: { feed?: string; site?: string; fromMs: number; toMs: number; limit: number },
): Promise<PriceRow[]> {
  const rows = await db.query<{ t: number | string; feed: string; site_id: string | null; price: number; source: string }>(
    `SELECT extract(epoch FROM time) * 1000 AS t, feed, site_id, price, source FROM price_data
     WHERE time >= to_timestamp($1 / 1000.0) AND time <= to_timestamp($2 / 1000.0)
       AND ($3::text IS NULL OR feed = $3) AND ($4::text IS NULL OR site_id = $4)
     ORDER BY time DESC LIMIT $5`,
    [q.fromMs, q.toMs, q.feed ?? null, q.site ?? null, q.limit],
  );
  return rows.map((r) => ({ timeMs: Math.round(Number(r.t)), feed: r.feed, siteId: r.site_id, price: Number(r.price), source: r.source }));
}

/** the newest tick of every feed (and site), to start with what was known */
export async function latestPrices(db: Db): Promise<PriceRow[]> {
  const rows = await db.query<{ t: number | string; feed: string; site_id: string | null; price: number; source: string }>(
    `SELECT DISTINCT ON (feed, site_id) extract(epoch FROM time) * 1000 AS t, feed, site_id, price, source
     FROM price_data WHERE time > now() - interval '7 days' ORDER BY feed, site_id, time DESC`,
  );
  return rows.map((r) => ({ timeMs: Math.round(Number(r.t)), feed: r.feed, siteId: r.site_id, price: Number(r.price), source: r.source }));
}
