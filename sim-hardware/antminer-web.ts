// The Antminer web control endpoint, without HTTP: `GET /cgi-bin/get_miner_conf.cgi` and
// `POST /cgi-bin/set_miner_conf.cgi` with "miner-mode" (0 normal, 1 sleep, 3 low power —
// shared/reference/device-protocols.md "Privileged commands"). antminer-web-server.ts puts it
// on a port; this module is the protocol, testable in-process.
import type { SimS21 } from './s21.js';
import { lowPowerTargetW } from './s21-models.js';

export type MinerMode = 0 | 1 | 3;
const MODES: readonly number[] = [0, 1, 3];

/** the subset of stock firmware's miner conf that the simulator models */
export interface AntminerConf {
  pools: Array<{ url: string; user: string; pass: string }>;
  'api-listen': boolean;
  'api-network': boolean;
  'bitmain-fan-ctrl': boolean;
  'bitmain-fan-pwm': string;
  'miner-mode': MinerMode;
  'freq-level': string;
}

export interface AntminerWebMiner {
  minerConf(): AntminerConf;
  setMinerMode(mode: MinerMode): void;
}

/**
 * Miner-mode on an S21 model: 0 → stock power, mining (from sleep it ramps up over its start-up
 * time); 1 → sleep; 3 → mining at the low-power target (lowPowerTargetW, 75 % of stock).
 * `sync` runs first, so the change takes effect at the current sim time, not retroactively.
 */
export function s21WebMiner(s21: SimS21, sync: () => void = () => {}): AntminerWebMiner {
  return {
    minerConf() {
      sync();
      const s = s21.cgminerStatus();
      return {
        pools: [{ url: s.pool.url, user: s.pool.user, pass: 'x' }],
        'api-listen': true,
        'api-network': true,
        'bitmain-fan-ctrl': false,
        'bitmain-fan-pwm': '100',
        'miner-mode': s.mode as MinerMode,
        'freq-level': '100',
      };
    },
    setMinerMode(mode) {
      sync();
      if (mode === 1) return s21.setMining(false);
      s21.setPowerTarget(mode === 3 ? lowPowerTargetW(s21.model) : null);
      s21.setMining(true);
    },
  };
}

export interface WebReply {
  status: number;
  body: Record<string, unknown>;
}

const GET_CONF = '/cgi-bin/get_miner_conf.cgi';
const SET_CONF = '/cgi-bin/set_miner_conf.cgi';

/** stock firmware answers a good set_miner_conf with exactly this */
export const SET_CONF_OK = { stats: 'success', code: 'M000', msg: 'OK!' } as const;

const fail = (status: number, msg: string): WebReply => ({ status, body: { stats: 'error', code: `E${status}`, msg } });

function parseMode(v: unknown): MinerMode | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  return MODES.includes(n) ? (n as MinerMode) : undefined;
}

/**
 * One request. A set body must be a JSON object with "miner-mode"; the whole conf may be sent
 * (as tools that read, edit and write the conf do) but only "miner-mode" is acted on. Bad input
 * is a 400 with a JSON error, never a throw.
 */
export function handleAntminerWebRequest(method: string, url: string, body: string, miner: AntminerWebMiner): WebReply {
  const path = url.split('?')[0];
  if (path === GET_CONF) {
    if (method !== 'GET') return fail(405, `${path} takes GET`);
    return { status: 200, body: { ...miner.minerConf() } };
  }
  if (path !== SET_CONF) return fail(404, `no such endpoint ${path}`);
  if (method !== 'POST') return fail(405, `${path} takes POST`);
  let conf: unknown;
  try {
    conf = JSON.parse(body);
  } catch {
    return fail(400, 'body is not JSON');
  }
  if (conf === null || typeof conf !== 'object' || Array.isArray(conf)) return fail(400, 'body must be a JSON object');
  if (!('miner-mode' in conf)) return fail(400, 'miner-mode is missing');
  const raw = (conf as Record<string, unknown>)['miner-mode'];
  const mode = parseMode(raw);
  if (mode === undefined) return fail(400, `miner-mode ${JSON.stringify(raw)} is not one of 0 (normal), 1 (sleep), 3 (low power)`);
  miner.setMinerMode(mode);
  return { status: 200, body: { ...SET_CONF_OK } };
}
