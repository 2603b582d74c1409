// Configuration of the feeds process (feeds-main.ts): flags first, then environment, then
// defaults. Every bad value is reported at once and the process exits non-zero (docs/conventions.md).
//
//   --mqtt URL                 broker (env HCP_MQTT_URL; default mqtt://127.0.0.1:1883)
//   --token-file FILE          the feed credential (a platform key, hcp_…); or env HCP_FEEDS_TOKEN,
//                              never a flag (ps shows flags). Without one the feeds connect anonymous.
//   --username NAME            the feed key's name, its MQTT user name (default feeds)
//   --ca-file FILE             PEM CA to trust for mqtts://
//   --seed N                   market and grid seed (default 1)
//   --speed X                  sim ms per real ms; 288 runs a day in 5 minutes (default 1)
//   --start ISO                sim time at start (default now)
//   --sites a:region,…         sites and their grid regions (default texas-1:ercot,texas-2:ercot,canada-1:ieso)
//   --market on|off            env HCP_MARKET_SIM (default on)
//   --grid on|off              env HCP_GRID_SIM (default on)
//   --prices FILE.csv          replay this price CSV (market-csv.ts) instead of simulating;
//                              the sim clock starts at its first tick unless --start is given
//   --grid-events FILE.json    scheduled frequency events, [{ region, at, hz, duration_s }]
//                              (env HCP_GRID_EVENTS holds the same JSON inline)
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { IClientOptions } from 'mqtt';
import { isValidSiteId } from '../proto/topics.js';
import type { GridEvent } from './grid.js';

export interface FeedsConfig {
  mqttUrl: string;
  /** the feed key's login (user name = key name, password = secret); undefined = anonymous */
  mqttLogin: { username: string; password: string } | undefined;
  /** PEM CA for mqtts:// (--ca-file) */
  ca: string | undefined;
  seed: string;
  speed: number;
  /** undefined = now (or the first CSV tick) */
  startMs: number | undefined;
  sites: Array<{ id: string; region: string }>;
  market: boolean;
  grid: boolean;
  pricesCsv: string | undefined;
  gridEvents: GridEvent[];
  logLevel: string;
}

export class FeedsConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export const DEFAULT_SITES = 'texas-1:ercot,texas-2:ercot,canada-1:ieso';

export const FEEDS_USAGE = `hcp feeds — simulated market prices and grid frequency, published on MQTT.

Usage: npm run feeds -- [options]

  --mqtt URL                 broker (HCP_MQTT_URL) [mqtt://127.0.0.1:1883]
  --token-file FILE          the feed credential (an HCP key, hcp_…); or HCP_FEEDS_TOKEN, never a
                             flag. Without one the feeds connect anonymous (an open demo broker).
  --username NAME            the feed key's name, its MQTT user name [feeds]
  --ca-file FILE             PEM CA to trust for mqtts://
  --seed N                   market and grid seed [1]
  --speed X                  sim ms per real ms; 288 runs a day in 5 minutes [1]
  --start ISO                sim time at start [now]
  --sites a:region,…         sites and their grid regions [${'texas-1:ercot,texas-2:ercot,canada-1:ieso'}]
  --market on|off            the market simulator (HCP_MARKET_SIM) [on]
  --grid on|off              the grid simulator (HCP_GRID_SIM) [on]
  --prices FILE.csv          replay real prices (columns ts,feed,site,price) instead of simulating
  --grid-events FILE.json    scheduled frequency events [{ region, at, hz, duration_s }] (HCP_GRID_EVENTS)
  -h, --help                 this text
`;

function onOff(name: string, v: string | undefined, problems: string[]): boolean {
  if (v === undefined || v === '') return true;
  if (v === 'on' || v === 'true') return true;
  if (v === 'off' || v === 'false') return false;
  problems.push(`${name}: must be on or off (got ${JSON.stringify(v)})`);
  return true;
}

function parseEvents(source: string, text: string, problems: string[]): GridEvent[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    problems.push(`${source}: not JSON (${(e as Error).message})`);
    return [];
  }
  if (!Array.isArray(v)) {
    problems.push(`${source}: must be a JSON array of { region, at, hz, duration_s }`);
    return [];
  }
  const out: GridEvent[] = [];
  v.forEach((e: unknown, i) => {
    const o = (typeof e === 'object' && e !== null ? e : {}) as Record<string, unknown>;
    const ok =
      typeof o.region === 'string' &&
      (typeof o.at === 'string' || typeof o.at === 'number') &&
      typeof o.hz === 'number' &&
      typeof o.duration_s === 'number';
    if (!ok) problems.push(`${source}[${i}]: needs region (string), at (ISO or seconds), hz and duration_s (numbers)`);
    else out.push({ region: o.region as string, at: o.at as string | number, hz: o.hz as number, duration_s: o.duration_s as number });
  });
  return out;
}

export function loadFeedsConfig(argv: string[], env: NodeJS.ProcessEnv = process.env, readFile = (p: string) => readFileSync(p, 'utf8')): FeedsConfig {
  const problems: string[] = [];
  let values: Record<string, string | undefined> = {};
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        mqtt: { type: 'string' },
        seed: { type: 'string' },
        speed: { type: 'string' },
        start: { type: 'string' },
        sites: { type: 'string' },
        market: { type: 'string' },
        grid: { type: 'string' },
        prices: { type: 'string' },
        'grid-events': { type: 'string' },
        'token-file': { type: 'string' },
        username: { type: 'string' },
        'ca-file': { type: 'string' },
      },
    }).values as Record<string, string | undefined>;
  } catch (e) {
    problems.push((e as Error).message);
  }

  const mqttUrl = values.mqtt ?? env.HCP_MQTT_URL ?? 'mqtt://127.0.0.1:1883';
  if (!/^mqtts?:\/\/[^/]+/.test(mqttUrl)) problems.push(`--mqtt: must be an mqtt:// or mqtts:// URL (got ${JSON.stringify(mqttUrl)})`);
  const seed = values.seed ?? '1';
  if (seed === '') problems.push('--seed: must not be empty');
  const speed = Number(values.speed ?? '1');
  if (!(speed > 0) || !Number.isFinite(speed)) problems.push(`--speed: must be a positive number (got ${JSON.stringify(values.speed)})`);
  let startMs: number | undefined;
  if (values.start !== undefined) {
    startMs = Date.parse(values.start);
    if (!Number.isFinite(startMs)) problems.push(`--start: not an ISO-8601 time (got ${JSON.stringify(values.start)})`);
  }

  const sites: FeedsConfig['sites'] = [];
  for (const part of (values.sites ?? DEFAULT_SITES).split(',')) {
    const [id = '', region = '', ...rest] = part.trim().split(':');
    if (!isValidSiteId(id) || !isValidSiteId(region) || rest.length > 0) problems.push(`--sites: ${JSON.stringify(part)} is not site:region (lowercase ids)`);
    else if (sites.some((s) => s.id === id)) problems.push(`--sites: ${id} is listed twice`);
    else sites.push({ id, region });
  }

  const market = onOff(values.market !== undefined ? '--market' : 'HCP_MARKET_SIM', values.market ?? env.HCP_MARKET_SIM, problems);
  const grid = onOff(values.grid !== undefined ? '--grid' : 'HCP_GRID_SIM', values.grid ?? env.HCP_GRID_SIM, problems);

  let gridEvents: GridEvent[] = [];
  if (values['grid-events'] !== undefined) {
    let text: string | undefined;
    try {
      text = readFile(values['grid-events']);
    } catch (e) {
      problems.push(`--grid-events: cannot read ${values['grid-events']} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    if (text !== undefined) gridEvents = parseEvents('--grid-events', text, problems);
  } else if (env.HCP_GRID_EVENTS) {
    gridEvents = parseEvents('HCP_GRID_EVENTS', env.HCP_GRID_EVENTS, problems);
  }
  for (const e of gridEvents) {
    if (!sites.some((s) => s.region === e.region)) problems.push(`grid event region ${JSON.stringify(e.region)} has no site in --sites`);
  }

  // The credential never comes from a flag: a command line is visible to every user of the host.
  let token: string | undefined;
  const tokenFile = values['token-file'];
  if (tokenFile !== undefined && env.HCP_FEEDS_TOKEN) problems.push('--token-file: give the token one way, HCP_FEEDS_TOKEN or --token-file');
  else if (tokenFile !== undefined) {
    try {
      token = readFile(tokenFile).trim();
      // the file's text is never put in a message
      if (!HCP_KEY.test(token)) problems.push(`--token-file ${tokenFile}: does not hold an HCP key (hcp_…)`);
    } catch (e) {
      problems.push(`--token-file: cannot read ${tokenFile} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  } else if (env.HCP_FEEDS_TOKEN) {
    token = env.HCP_FEEDS_TOKEN;
    if (!HCP_KEY.test(token)) problems.push('HCP_FEEDS_TOKEN: must be an HCP key (hcp_…) (a value, not shown)');
  }
  const username = values.username ?? 'feeds';
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(username)) problems.push(`--username: must be a key name (letters, digits, . _ -, at most 64) (got ${JSON.stringify(username)})`);
  let ca: string | undefined;
  if (values['ca-file'] !== undefined) {
    try {
      ca = readFile(values['ca-file']);
    } catch (e) {
      problems.push(`--ca-file: cannot read ${values['ca-file']} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  if (problems.length > 0) throw new FeedsConfigError(problems);
  const mqttLogin = token ? { username, password: token } : undefined;
  return { mqttUrl, mqttLogin, ca, seed, speed, startMs, sites, market, grid, pricesCsv: values.prices, gridEvents, logLevel: env.LOG_LEVEL ?? 'info' };
}

const HCP_KEY = /^hcp_[A-Za-z0-9_-]{20,200}$/;

/**
 * The feeds' MQTT client options. With a login the client id is hcp-key-<name>-<random>: the
 * broker binds hcp-key-<name> ids to that key, and the random part lets two feeds processes on
 * one key run side by side without taking each other's session over (MQTT 3.1.1 §3.1.4-2).
 */
export function feedsClientOptions(c: FeedsConfig, random = () => randomBytes(4).toString('hex')): IClientOptions {
  return {
    clientId: c.mqttLogin ? `hcp-key-${c.mqttLogin.username}-${random()}` : `feeds-${random()}`,
    username: c.mqttLogin?.username,
    password: c.mqttLogin?.password,
    ...(c.ca !== undefined ? { ca: c.ca } : {}),
    clean: true,
    reconnectPeriod: 1000,
    connectTimeout: 5000,
  };
}
