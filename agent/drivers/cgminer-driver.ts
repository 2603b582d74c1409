// CommandableDriver for Antminers on stock firmware. Reads use the cgminer API (TCP 4028): one
// joined `stats+summary` request per miner, in parallel with bounded concurrency; a miner that
// cannot be read is an entry in `errors`, never a throw. Commands use the web control endpoint
// (port 80), since stock firmware denies privileged cgminer commands with code 45
// (shared/reference/device-protocols.md "Privileged commands").
//
// A conf write must carry the whole conf (pools included), so an op reads before it writes. For
// an urgent op (a grid trip: the load must be gone within 250 ms) that read is skipped: the
// driver keeps each miner's last conf, `prepare` warms it for the devices a trip covers and
// refreshes it every `confRefreshMs` (a conf older than two refreshes is not used), and the
// urgent write is one digest-authenticated round trip on a kept-alive connection.
import type { DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import type { Device } from '../../proto/gen/hcp/v1/gateway.js';
import { DeviceKind } from '../../proto/gen/hcp/v1/gateway.js';
import type { AsicSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { ASIC_MODEL_IDS, ASIC_MODELS, isAsicModelId, type AsicModel } from '../../proto/asic-models.js';
import { CgminerError, queryCgminer, type CgminerReply } from './cgminer-client.js';
import { mapCgminerToAsicSample } from './cgminer-mapping.js';
import { AntminerWebError, AntminerWebSession, type MinerConf } from './antminer-web-client.js';
import type { CommandableDriver, DeviceOp, DeviceOpResult, DriverReadError, DriverReading } from './driver.js';

export interface CgminerDeviceConfig {
  id: string;
  host: string;
  port: number;
  /** a model id of the catalog (proto/asic-models.ts): 's21' | 's21-pro' | 's21-xp' */
  model: string;
  /** the web control port (get/set_miner_conf.cgi); default 80 */
  webPort?: number;
}

export interface CgminerDriverOptions {
  devices: CgminerDeviceConfig[];
  /** per cgminer request, and per web call (auth challenge included) */
  timeoutMs?: number;
  /** web control login; default root/root, stock firmware's */
  webCredentials?: { user: string; password: string };
  concurrency?: number;
  /** how often the confs of prepared devices are read again; default 1 minute */
  confRefreshMs?: number;
  /** wall clock for conf ages (tests); default Date.now */
  now?: () => number;
}

/** the catalog entry of a validated device */
const modelOf = (d: CgminerDeviceConfig): AsicModel => ASIC_MODELS[d.model as keyof typeof ASIC_MODELS];

/** validates up front and names every problem (docs/conventions.md, nats.js options habit) */
function validate(o: CgminerDriverOptions): void {
  const problems: string[] = [];
  const ids = new Set<string>();
  o.devices.forEach((d, i) => {
    if (!d.id) problems.push(`devices[${i}].id is empty`);
    if (ids.has(d.id)) problems.push(`devices[${i}].id ${d.id} is duplicated`);
    ids.add(d.id);
    if (!d.host) problems.push(`devices[${i}].host is empty`);
    if (!Number.isInteger(d.port) || d.port < 1 || d.port > 65535) problems.push(`devices[${i}].port ${d.port} is not a TCP port`);
    if (d.webPort !== undefined && !(Number.isInteger(d.webPort) && d.webPort >= 1 && d.webPort <= 65535)) {
      problems.push(`devices[${i}].webPort ${d.webPort} is not a TCP port`);
    }
    if (!isAsicModelId(d.model)) problems.push(`devices[${i}].model ${JSON.stringify(d.model)} is not one of ${ASIC_MODEL_IDS.join(', ')}`);
  });
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) problems.push(`timeoutMs must be positive, got ${o.timeoutMs}`);
  if (o.concurrency !== undefined && !(Number.isInteger(o.concurrency) && o.concurrency >= 1)) {
    problems.push(`concurrency must be an integer ≥ 1, got ${o.concurrency}`);
  }
  if (o.confRefreshMs !== undefined && !(o.confRefreshMs >= 1000)) problems.push(`confRefreshMs must be ≥ 1000, got ${o.confRefreshMs}`);
  if (problems.length) throw new RangeError(`invalid cgminer driver options: ${problems.join('; ')}`);
}

async function mapLimited<T, R>(items: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** miner-mode (stock firmware): 0 normal, 1 sleep, 3 low power */
type MinerMode = 0 | 1 | 3;

/** conf miner-mode → DeviceState.state; the conf cannot tell mining from ramping */
function stateOfMode(mode: unknown, wokenNow: boolean): string {
  const m = Number(mode);
  if (m === 1) return 'sleeping';
  return wokenNow ? 'ramping' : 'mining';
}

export function createCgminerDriver(opts: CgminerDriverOptions): CommandableDriver {
  validate(opts);
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const concurrency = opts.concurrency ?? 32;
  // Commands are rare and urgent (a grid trip must reach every miner in a fraction of a second),
  // reads are periodic: commands fan out wider.
  const applyConcurrency = Math.max(concurrency, 256);
  const creds = opts.webCredentials ?? { user: 'root', password: 'root' };
  const byId = new Map(opts.devices.map((d) => [d.id, d]));
  let closed = false;
  const sessions = new Map<string, AntminerWebSession>();
  const session = (d: CgminerDeviceConfig): AntminerWebSession => {
    let s = sessions.get(d.id);
    if (!s) sessions.set(d.id, (s = new AntminerWebSession({ host: d.host, port: d.webPort ?? 80, user: creds.user, password: creds.password, timeoutMs })));
    return s;
  };
  const refreshMs = opts.confRefreshMs ?? 60_000;
  const now = opts.now ?? Date.now;
  /**
   * Each miner's conf as last read or written, and when. An urgent op uses it only while it is
   * younger than two refreshes; a failed read forgets it. Whatever was changed on the miner by
   * hand since (pools, fans) is written back by an urgent op: the price of a one-request trip.
   */
  const confs = new Map<string, { conf: MinerConf; atMs: number }>();
  const readConf = async (d: CgminerDeviceConfig): Promise<MinerConf> => {
    try {
      const conf = await session(d).getConf();
      confs.set(d.id, { conf, atMs: now() });
      return conf;
    } catch (err) {
      confs.delete(d.id);
      throw err;
    }
  };
  const freshConf = (id: string): MinerConf | undefined => {
    const c = confs.get(id);
    return c && now() - c.atMs <= 2 * refreshMs ? c.conf : undefined;
  };
  /**
   * Urgent ops win over ordinary ones on the same miner. An urgent op bumps the miner's
   * generation; an ordinary op that read under an older one does not write (`superseded`). An
   * ordinary write already on the wire when the urgent op starts is waited for, and the urgent
   * write is sent again after it, so the miner ends in the urgent op's mode.
   */
  const generation = new Map<string, number>();
  const ordinaryWrites = new Map<string, Set<Promise<unknown>>>();
  const writeConf = async (d: CgminerDeviceConfig, conf: MinerConf, urgent: boolean): Promise<void> => {
    if (urgent) {
      const racing = [...(ordinaryWrites.get(d.id) ?? [])];
      await session(d).setConf(conf);
      if (racing.length) {
        await Promise.allSettled(racing);
        await session(d).setConf(conf);
      }
    } else {
      const w = session(d).setConf(conf);
      const set = ordinaryWrites.get(d.id) ?? new Set();
      ordinaryWrites.set(d.id, set.add(w));
      try {
        await w;
      } finally {
        set.delete(w);
      }
    }
    confs.set(d.id, { conf, atMs: now() });
  };
  /** devices an urgent op may have to reach: their confs are kept warm */
  let prepared: CgminerDeviceConfig[] = [];
  const refresh = async () => (closed ? [] : mapLimited(prepared, concurrency, (d) => readConf(d).then(() => true, () => false)));
  const refreshTimer = setInterval(() => void refresh(), refreshMs);
  refreshTimer.unref();

  const inventory: Device[] = opts.devices.map((d) => {
    const m = modelOf(d);
    return {
      id: d.id,
      kind: DeviceKind.DEVICE_KIND_ASIC,
      model: m.name,
      endpoint: `${d.host}:${d.port}`,
      // The miner id is only known after a read; inventory is fixed for the driver's lifetime.
      serial: '',
      ratedPowerW: m.ratedPowerW,
      ratedHashrateThs: m.ratedThs,
      memoryTotalMib: 0,
      driver: 'cgminer',
    };
  });

  async function readOne(d: CgminerDeviceConfig, nowMs: number): Promise<AsicSample | DriverReadError> {
    const q = { host: d.host, port: d.port, timeoutMs };
    try {
      let stats: CgminerReply | undefined;
      let summary: CgminerReply | undefined;
      try {
        const joined = await queryCgminer({ ...q, command: 'stats+summary' });
        stats = (joined.stats as CgminerReply[] | undefined)?.[0];
        summary = (joined.summary as CgminerReply[] | undefined)?.[0];
      } catch (err) {
        // Firmware that refuses joins answers with a STATUS error: ask twice instead.
        if (!(err instanceof CgminerError && err.code === 'api_error')) throw err;
        stats = await queryCgminer({ ...q, command: 'stats' });
        summary = await queryCgminer({ ...q, command: 'summary' });
      }
      return mapCgminerToAsicSample(d.id, nowMs, modelOf(d), stats, summary);
    } catch (err) {
      const code = err instanceof CgminerError ? err.code : 'bad_reply';
      return { deviceId: d.id, code, message: err instanceof Error ? err.message : String(err) };
    }
  }

  const result = (deviceId: string, state: DeviceState, code = 'ok', message = ''): DeviceOpResult => ({ deviceId, ok: code === 'ok', code, message, state });

  /**
   * One mining op: read the conf, and write it back with the new miner-mode only if the mode
   * differs — a conf write restarts bmminer on real firmware, so a repeated op must not cause
   * one. The resulting state is derived from the conf read plus the mode the firmware accepted;
   * no cgminer read follows, since the API is down for a while after the restart. Telemetry
   * shows the actual ramp.
   */
  async function applyMining(d: CgminerDeviceConfig, op: Extract<DeviceOp, { kind: 'mining' }>): Promise<DeviceOpResult> {
    const m = modelOf(d);
    const w = op.powerTargetW;
    const stateOf = (mode: unknown, wokenNow = false): DeviceState => ({
      deviceId: d.id, state: stateOfMode(mode, wokenNow), workloadId: '', powerTargetW: Number(mode) === 3 ? m.lowPowerW : 0,
    });
    const unreachable: DeviceState = { deviceId: d.id, state: 'unreachable', workloadId: '', powerTargetW: 0 };
    if (w !== null && !(Number.isFinite(w) && w > 0)) {
      return result(d.id, { ...unreachable, state: 'unknown' }, 'invalid_command', `power target ${w} W is not a positive number`);
    }
    // Stock firmware sets power only through its modes: stock (0) or low power (3). Any other
    // target is refused rather than approximated; ±1 W absorbs rounding by the caller. The code
    // does not depend on the miner; the state is read if it can be.
    if (w !== null && Math.abs(w - m.lowPowerW) > 1) {
      const state = await readConf(d).then((c) => stateOf(c['miner-mode']), () => unreachable);
      return result(d.id, state, 'unsupported',
        `stock firmware offers only stock power (${m.ratedPowerW} W) or low-power mode (${m.lowPowerW} W); ${w} W cannot be set`);
    }
    const want: MinerMode = !op.enabled ? 1 : w !== null ? 3 : 0;
    const gen = (generation.get(d.id) ?? 0) + (op.urgent ? 1 : 0);
    if (op.urgent) generation.set(d.id, gen);
    try {
      const known = op.urgent ? freshConf(d.id) : undefined;
      if (known) {
        // No read: write at once, whatever the mode was (a repeat costs a restart, not a trip).
        await writeConf(d, { ...known, 'miner-mode': want }, true);
        return result(d.id, stateOf(want, Number(known['miner-mode']) === 1 && want !== 1));
      }
      const conf = await readConf(d);
      const had = Number(conf['miner-mode']);
      if (!op.urgent && (generation.get(d.id) ?? 0) !== gen) {
        return result(d.id, { ...unreachable, state: 'unknown' }, 'superseded', 'an urgent op (grid trip) changed this miner while this op was under way; not written');
      }
      if (had === want) return result(d.id, stateOf(want));
      await writeConf(d, { ...conf, 'miner-mode': want }, op.urgent === true);
      return result(d.id, stateOf(want, had === 1));
    } catch (err) {
      const code = err instanceof AntminerWebError ? err.code : 'error';
      return result(d.id, unreachable, 'driver_error', `${code}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  async function applyOne(op: DeviceOp): Promise<DeviceOpResult> {
    const unknown: DeviceState = { deviceId: op.deviceId, state: 'unknown', workloadId: '', powerTargetW: 0 };
    try {
      const d = byId.get(op.deviceId);
      if (!d) return result(op.deviceId, unknown, 'unknown_device', `${op.deviceId} is not a device of the cgminer driver`);
      if (closed) return result(op.deviceId, unknown, 'driver_error', 'driver is closed');
      if (op.kind !== 'mining') return result(op.deviceId, unknown, 'invalid_command', `${op.kind} applies to GPUs, not ASICs`);
      return await applyMining(d, op);
    } catch (err) {
      return result(op.deviceId, unknown, 'driver_error', err instanceof Error ? err.message : String(err));
    }
  }

  return {
    name: 'cgminer',
    inventory: () => inventory,
    async read(nowMs) {
      const reading: DriverReading = { gpus: [], asics: [], errors: [] };
      if (closed) return reading;
      const results = await mapLimited(opts.devices, concurrency, (d) => readOne(d, nowMs));
      for (const r of results) {
        if ('code' in r) reading.errors.push(r);
        else reading.asics.push(r);
      }
      return reading;
    },
    async apply(ops) {
      // Ops on the same miner run in order (an off then an on must end on); different miners
      // run in parallel, bounded like reads.
      const groups = new Map<string, number[]>();
      ops.forEach((op, i) => groups.set(op.deviceId, [...(groups.get(op.deviceId) ?? []), i]));
      const out = new Array<DeviceOpResult>(ops.length);
      await mapLimited([...groups.values()], applyConcurrency, async (idx) => {
        for (const i of idx) out[i] = await applyOne(ops[i]!);
      });
      return out;
    },
    async prepare(deviceIds) {
      prepared = deviceIds.flatMap((id) => byId.get(id) ?? []);
      const keep = new Set(deviceIds);
      for (const id of confs.keys()) if (!keep.has(id)) confs.delete(id);
      const ok = await refresh();
      return { ready: ok.filter(Boolean).length, failed: ok.length - ok.filter(Boolean).length };
    },
    async close() {
      closed = true;
      clearInterval(refreshTimer);
    },
  };
}
