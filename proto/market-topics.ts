// MQTT topics and payloads of the market and grid feeds (issue 5). Kept beside topics.ts, in the
// same style: builders for publishers, one parser for subscribers and the broker's ACL, and
// payload decoders that reject anything malformed instead of throwing.
//
//   hcp/v1/market/btc_usd            { "ts": ISO-8601, "price": USD per BTC }
//   hcp/v1/market/power/<site>       { "ts": ISO-8601, "price": USD per kWh }
//   hcp/v1/market/gpu_spot           { "ts": ISO-8601, "price": USD per GPU-hour }
//   hcp/v1/grid/<region>/frequency   { "ts": ISO-8601, "hz": number }
//
// Anyone may publish these (the sim feeds process, mosquitto_pub, a real price adapter); the
// control plane subscribes to `marketTopics.allMarket` and `marketTopics.allGrid`.
import { isValidSiteId, TOPIC_ROOT } from './topics.js';

function checkId(kind: string, id: string): string {
  if (!isValidSiteId(id)) throw new Error(`invalid ${kind} id ${JSON.stringify(id)}`);
  return id;
}

export const marketTopics = {
  btcUsd: `${TOPIC_ROOT}/market/btc_usd`,
  gpuSpot: `${TOPIC_ROOT}/market/gpu_spot`,
  power: (site: string) => `${TOPIC_ROOT}/market/power/${checkId('site', site)}`,
  /** region ids follow the site id rules: `ercot`, `ieso` */
  gridFrequency: (region: string) => `${TOPIC_ROOT}/grid/${checkId('region', region)}/frequency`,
  allMarket: `${TOPIC_ROOT}/market/#`,
  allGrid: `${TOPIC_ROOT}/grid/+/frequency`,
} as const;

export type ParsedMarketTopic =
  | { kind: 'btc_usd' }
  | { kind: 'gpu_spot' }
  | { kind: 'power'; site: string }
  | { kind: 'grid_frequency'; region: string };

/** What a concrete market/grid topic is, or null when it is not one of these. */
export function parseMarketTopic(topic: string): ParsedMarketTopic | null {
  const p = topic.split('/');
  if (p[0] !== 'hcp' || p[1] !== 'v1') return null;
  if (p[2] === 'market') {
    if (p.length === 4 && p[3] === 'btc_usd') return { kind: 'btc_usd' };
    if (p.length === 4 && p[3] === 'gpu_spot') return { kind: 'gpu_spot' };
    if (p.length === 5 && p[3] === 'power' && isValidSiteId(p[4]!)) return { kind: 'power', site: p[4]! };
    return null;
  }
  if (p[2] === 'grid' && p.length === 5 && p[4] === 'frequency' && isValidSiteId(p[3]!)) return { kind: 'grid_frequency', region: p[3]! };
  return null;
}

export interface PricePayload {
  ts: string;
  price: number;
}

export interface FrequencyPayload {
  ts: string;
  hz: number;
}

export const encodePrice = (p: PricePayload): string => JSON.stringify({ ts: p.ts, price: p.price });
export const encodeFrequency = (p: FrequencyPayload): string => JSON.stringify({ ts: p.ts, hz: p.hz });

function parseObject(payload: Buffer | string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(payload.toString());
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

// Date.parse reads years from -271821 to +275760; PostgreSQL stores none before 4713 BC, and a
// tick it cannot store would be retried with every later one. A reading is of years 0001..9999.
const MIN_MS = Date.parse('0001-01-01T00:00:00Z');
const MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');

/** A valid ISO-8601 time in years 0001..9999, normalised to UTC `…Z`; null otherwise. */
function isoTime(v: unknown): string | null {
  if (typeof v !== 'string') return null;
  const ms = Date.parse(v);
  return Number.isFinite(ms) && ms >= MIN_MS && ms <= MAX_MS ? new Date(ms).toISOString() : null;
}

/** `{ ts, price }` with a finite price; null for anything else. Negative prices are real (ERCOT). */
export function decodePrice(payload: Buffer | string): PricePayload | null {
  const o = parseObject(payload);
  const ts = isoTime(o?.ts);
  if (!o || ts === null || typeof o.price !== 'number' || !Number.isFinite(o.price)) return null;
  return { ts, price: o.price };
}

/** `{ ts, hz }` with a finite positive frequency; null for anything else. */
export function decodeFrequency(payload: Buffer | string): FrequencyPayload | null {
  const o = parseObject(payload);
  const ts = isoTime(o?.ts);
  if (!o || ts === null || typeof o.hz !== 'number' || !(o.hz > 0) || !Number.isFinite(o.hz)) return null;
  return { ts, hz: o.hz };
}
