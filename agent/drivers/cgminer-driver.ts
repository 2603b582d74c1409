// DeviceDriver for Antminers over the cgminer API (TCP 4028). Each read is one joined
// `stats+summary` request per miner, in parallel with bounded concurrency; a miner that cannot
// be read is an entry in `errors`, never a throw.
import type { Device } from '../../proto/gen/hcp/v1/gateway.js';
import { DeviceKind } from '../../proto/gen/hcp/v1/gateway.js';
import type { AsicSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { ASIC_MODELS } from './asic-models.js';
import { CgminerError, queryCgminer, type CgminerReply } from './cgminer-client.js';
import { mapCgminerToAsicSample } from './cgminer-mapping.js';
import type { DeviceDriver, DriverReadError, DriverReading } from './driver.js';

export interface CgminerDeviceConfig {
  id: string;
  host: string;
  port: number;
  /** a key of ASIC_MODELS: 's21' | 's21-pro' | 's21-xp' */
  model: string;
}

export interface CgminerDriverOptions {
  devices: CgminerDeviceConfig[];
  timeoutMs?: number;
  concurrency?: number;
}

/** validates up front and names every problem (STYLE.md, nats.js options habit) */
function validate(o: CgminerDriverOptions): void {
  const problems: string[] = [];
  const ids = new Set<string>();
  o.devices.forEach((d, i) => {
    if (!d.id) problems.push(`devices[${i}].id is empty`);
    if (ids.has(d.id)) problems.push(`devices[${i}].id ${d.id} is duplicated`);
    ids.add(d.id);
    if (!d.host) problems.push(`devices[${i}].host is empty`);
    if (!Number.isInteger(d.port) || d.port < 1 || d.port > 65535) problems.push(`devices[${i}].port ${d.port} is not a TCP port`);
    if (!ASIC_MODELS[d.model]) problems.push(`devices[${i}].model ${JSON.stringify(d.model)} is not one of ${Object.keys(ASIC_MODELS).join(', ')}`);
  });
  if (o.timeoutMs !== undefined && !(o.timeoutMs > 0)) problems.push(`timeoutMs must be positive, got ${o.timeoutMs}`);
  if (o.concurrency !== undefined && !(Number.isInteger(o.concurrency) && o.concurrency >= 1)) {
    problems.push(`concurrency must be an integer ≥ 1, got ${o.concurrency}`);
  }
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

export function createCgminerDriver(opts: CgminerDriverOptions): DeviceDriver {
  validate(opts);
  const timeoutMs = opts.timeoutMs ?? 3_000;
  const concurrency = opts.concurrency ?? 32;
  let closed = false;

  const inventory: Device[] = opts.devices.map((d) => {
    const m = ASIC_MODELS[d.model]!;
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
      return mapCgminerToAsicSample(d.id, nowMs, ASIC_MODELS[d.model]!, stats, summary);
    } catch (err) {
      const code = err instanceof CgminerError ? err.code : 'bad_reply';
      return { deviceId: d.id, code, message: err instanceof Error ? err.message : String(err) };
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
    async close() {
      closed = true;
    },
  };
}
