// The report commands of the cgminer/bmminer API (cgminer API-README, api.c), built from one
// miner snapshot. Field names and the STATUS codes follow shared/reference/device-protocols.md.
import type { CgminerStatus } from './cgminer-status.js';

export const API_DESCRIPTION = 'bmminer 1.0.0';

export type ApiItem = Record<string, string | number | boolean>;

export interface CommandResult {
  code: number;
  msg: string;
  /** the data section's name ("SUMMARY", "STATS", …) and its items */
  section: string;
  items: ApiItem[];
}

/** cgminer's suffix_string: 262144 → "262K" (powers of 1000, as the real pools reply shows) */
export function suffixString(n: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : Math.floor(v)}${units[u]}`;
}

function hms(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const mm = String(Math.floor((seconds % 3600) / 60)).padStart(2, '0');
  const ss = String(seconds % 60).padStart(2, '0');
  return `${h}:${mm}:${ss}`;
}

const pct = (part: number, whole: number): number => (whole > 0 ? Math.round((part / whole) * 10000) / 100 : 0);

export function version(s: CgminerStatus): CommandResult {
  return {
    code: 22,
    msg: 'CGMiner versions',
    section: 'VERSION',
    items: [{ BMMiner: '1.0.0', API: '3.1', Miner: 'uart_trans.1.3', Type: s.type }],
  };
}

export function summary(s: CgminerStatus): CommandResult {
  const diff1 = s.accepted * s.pool.difficulty;
  return {
    code: 11,
    msg: 'Summary',
    section: 'SUMMARY',
    items: [
      {
        Elapsed: s.elapsedS,
        'GHS 5s': s.ghs5s,
        'GHS av': s.ghsAv,
        'GHS 30m': s.ghs30m,
        Accepted: s.accepted,
        Rejected: s.rejected,
        'Hardware Errors': s.hardwareErrors,
        // cgminer "Utility": accepted shares per minute.
        Utility: s.elapsedS > 0 ? Math.round((s.accepted / (s.elapsedS / 60)) * 100) / 100 : 0,
        Stale: 0,
        'Best Share': s.bestShare,
        'Device Hardware%': pct(s.hardwareErrors, diff1 + s.hardwareErrors),
        'Device Rejected%': pct(s.rejected, s.accepted + s.rejected),
        'Pool Rejected%': pct(s.rejected, s.accepted + s.rejected),
        'Pool Stale%': 0,
      },
    ],
  };
}

export function devs(s: CgminerStatus): CommandResult {
  const hottest = Math.max(...s.chains.flatMap((c) => c.chipTempsC));
  return {
    code: 9,
    msg: '1 ASC(s)',
    section: 'DEVS',
    items: [
      {
        ASC: 0,
        Name: 'BTM_SOC',
        ID: 0,
        Enabled: 'Y',
        Status: 'Alive',
        Temperature: hottest,
        'MHS av': Math.round(s.ghsAv * 1000 * 100) / 100,
        'MHS 5s': Math.round(s.ghs5s * 1000 * 100) / 100,
        Accepted: s.accepted,
        Rejected: s.rejected,
        'Hardware Errors': s.hardwareErrors,
        'Device Elapsed': s.elapsedS,
      },
    ],
  };
}

export function pools(s: CgminerStatus): CommandResult {
  return {
    code: 7,
    msg: '1 Pool(s)',
    section: 'POOLS',
    items: [
      {
        POOL: 0,
        URL: s.pool.url,
        Status: 'Alive',
        Priority: 0,
        Quota: 1,
        Accepted: s.accepted,
        Rejected: s.rejected,
        User: s.pool.user,
        'Last Share Time': s.lastShareAgeS === null ? '0' : hms(s.lastShareAgeS),
        Diff: suffixString(s.pool.difficulty),
        'Stratum Active': true,
      },
    ],
  };
}

export function stats(s: CgminerStatus): CommandResult {
  // STATS[0] is the header, STATS[1] the data (bmminer layout).
  const data: ApiItem = {
    STATS: 0,
    ID: 'BTM_SOC0',
    Elapsed: s.elapsedS,
    Calls: 0,
    Wait: 0,
    Max: 0,
    Min: 99999999,
    'GHS 5s': s.ghs5s,
    'GHS av': s.ghsAv,
    rate_30m: s.ghs30m,
    Mode: s.mode,
    miner_count: s.chains.length,
    frequency: s.frequencyMhz,
    fan_num: s.fansRpm.length,
  };
  s.fansRpm.forEach((rpm, i) => (data[`fan${i + 1}`] = rpm));
  data.temp_num = s.chains.length;
  s.chains.forEach((c, i) => {
    // Four readings joined by "-": negative values give "--", e.g. "2--1-20-22".
    data[`temp_pcb${i + 1}`] = c.pcbTempsC.join('-');
    data[`temp_chip${i + 1}`] = c.chipTempsC.join('-');
  });
  s.chains.forEach((c, i) => {
    data[`chain_acn${i + 1}`] = c.chips;
    data[`chain_rate${i + 1}`] = c.rateGhs.toFixed(2);
    data[`chain_hw${i + 1}`] = c.hardwareErrors;
  });
  data.total_rateideal = s.rateIdealGhs;
  data.rate_unit = 'GH';
  if (s.powerW !== undefined) data.total_power = s.powerW;
  data.miner_id = s.minerId;
  return {
    code: 70,
    msg: 'CGMiner stats',
    section: 'STATS',
    items: [{ BMMiner: '1.0.0', Miner: 'uart_trans.1.3', CompileTime: 'Thu Jan 1 00:00:00 CST 2024', Type: s.type }, data],
  };
}

export function config(s: CgminerStatus): CommandResult {
  return {
    code: 33,
    msg: 'CGMiner config',
    section: 'CONFIG',
    items: [
      {
        'ASC Count': 1,
        'PGA Count': 0,
        'Pool Count': 1,
        Strategy: 'Failover',
        'Log Interval': 5,
        'Device Code': '',
        OS: 'Linux',
        Hotplug: 'None',
        'miner_id': s.minerId,
      },
    ],
  };
}

/** Stock Antminer firmware answers only these remotely; all of them can be joined with "+". */
export const REPORT_COMMANDS: Readonly<Record<string, (s: CgminerStatus) => CommandResult>> = {
  version,
  summary,
  devs,
  pools,
  stats,
  config,
};

/** cgminer commands that exist but need privileged access, answered with code 45 */
export const PRIVILEGED_COMMANDS: ReadonlySet<string> = new Set([
  'restart', 'quit', 'switchpool', 'enablepool', 'disablepool', 'addpool', 'removepool',
  'poolpriority', 'poolquota', 'save', 'privileged', 'ascset', 'ascenable', 'ascdisable',
  'pgaset', 'pgaenable', 'pgadisable', 'setconfig', 'zero', 'debug', 'hotplug', 'failover-only',
]);
