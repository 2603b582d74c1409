// The market + grid feeds process: `tsx sim-hardware/feeds-main.ts [flags]` (flags and env in
// feeds-config.ts). Wiring and signals only.
import { readFileSync } from 'node:fs';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { createSimClock } from './clock.js';
import { FeedsConfigError, FEEDS_USAGE, feedsClientOptions, loadFeedsConfig } from './feeds-config.js';
import { createFeedPublisher } from './feeds.js';
import { createLiveGrid } from './grid.js';
import { MarketCsvError, parseMarketCsv } from './market-csv.js';
import { createLiveMarket, createReplaySource, utcOffsetForRegion, type MarketTick } from './market.js';

function fail(err: unknown): never {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
}

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(FEEDS_USAGE);
  process.exit(0);
}

let config;
let replay: MarketTick[] | null = null;
try {
  config = loadFeedsConfig(process.argv.slice(2));
  if (config.pricesCsv !== undefined && config.market) replay = parseMarketCsv(readFileSync(config.pricesCsv, 'utf8'));
} catch (err) {
  if (err instanceof FeedsConfigError || err instanceof MarketCsvError) fail(err);
  fail(new Error(`--prices: ${(err as Error).message}`));
}

const log = pino({ name: 'hcp-feeds', level: config.logLevel, timestamp: pino.stdTimeFunctions.isoTime });
const startMs = config.startMs ?? (replay?.[0] ? Date.parse(replay[0].ts) : Date.now());
const clock = createSimClock({ startMs, speed: config.speed });
const market = !config.market
  ? null
  : replay
    ? createReplaySource(replay, clock)
    : createLiveMarket({ seed: config.seed, clock, sites: config.sites.map((s) => ({ id: s.id, utcOffsetHours: utcOffsetForRegion(s.region) })) });
const regions = [...new Set(config.sites.map((s) => s.region))];
const grid = config.grid ? createLiveGrid({ seed: config.seed, clock, regions, events: config.gridEvents, startMs }) : null;

const client = mqtt.connect(config.mqttUrl, feedsClientOptions(config));
client.on('connect', () => log.info({ url: config.mqttUrl, username: config.mqttLogin?.username ?? null }, 'mqtt connected'));
client.on('error', (err) => log.warn({ err: err.message }, 'mqtt error'));
const publisher = createFeedPublisher({ client, market, grid, onError: (err) => log.warn({ err: err.message }, 'publish failed') });
log.info({ seed: config.seed, speed: config.speed, start: new Date(startMs).toISOString(), sites: config.sites, market: market ? (replay ? 'replay' : 'sim') : 'off', grid: grid ? 'sim' : 'off', events: config.gridEvents.length }, 'feeds started');

const stats = setInterval(() => log.info({ simTime: new Date(clock.now()).toISOString(), ...publisher.counts() }, 'feeds published'), 30_000);
stats.unref();

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'stopping');
  // Shutdown order: stop intake (timer) → drain in-flight publishes → close the connection.
  const deadline = setTimeout(() => process.exit(1), 5000);
  await publisher.close();
  await client.endAsync();
  clearTimeout(deadline);
  process.exit(0);
}
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
