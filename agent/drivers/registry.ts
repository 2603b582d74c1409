// Drivers by name. The agent's core builds its drivers from configuration (--asic-driver
// sim|cgminer; GPUs: sim) by looking factories up here, and never imports an implementation it
// does not own: the real-miner driver (cgminer) is registered by the core, the simulated fleet by
// the entry point (agent/main.ts through agent/main-sim.ts). A name nobody registered is a
// configuration error naming the flag.
import type { Logger } from 'pino';
import type { AgentConfig } from '../config.js';
import { createCgminerDriver, type CgminerDeviceConfig } from './cgminer-driver.js';
import type { CommandableDriver } from './driver.js';

export interface DriverContext {
  config: AgentConfig;
  log: Logger;
  /** which of the site's device kinds this factory is to build (both, when one name serves both) */
  gpus: boolean;
  asics: boolean;
}

/** what a factory built: its drivers, and how to stop whatever stands behind them */
export interface DriverSet {
  drivers: CommandableDriver[];
  /** after every driver is closed; idempotent */
  close(): Promise<void>;
}

export type DriverFactory = (ctx: DriverContext) => Promise<DriverSet>;

export interface DriverRegistry {
  register(name: string, factory: DriverFactory): DriverRegistry;
  get(name: string): DriverFactory | undefined;
  names(): string[];
}

/** the registry names: sim | cgminer, and cgminer-sim for --asic-driver cgminer with no --asic-endpoints */
export const DRIVER_NAMES = { sim: 'sim', cgminer: 'cgminer', cgminerSim: 'cgminer-sim' } as const;

export function createDriverRegistry(): DriverRegistry {
  const factories = new Map<string, DriverFactory>();
  const r: DriverRegistry = {
    register(name, factory) {
      factories.set(name, factory);
      return r;
    },
    get: (name) => factories.get(name),
    names: () => [...factories.keys()],
  };
  return r.register(DRIVER_NAMES.cgminer, cgminerFactory);
}

/** real miners at --asic-endpoints host:port,…, read and commanded over the cgminer API */
export const cgminerFactory: DriverFactory = async ({ config: c }) => {
  const devices: CgminerDeviceConfig[] = (c.asicEndpoints ?? '').split(',').filter((e) => e.trim()).map((e, i) => {
    const [host, port] = e.trim().split(':') as [string, string];
    return { id: `asic-${c.site}-${String(i + 1).padStart(5, '0')}`, host, port: Number(port), model: c.asicModel };
  });
  const drivers = devices.length ? [createCgminerDriver({ devices, timeoutMs: cgminerTimeoutMs(c) })] : [];
  return { drivers, close: async () => {} };
};

/** per cgminer request: under two sampling intervals, at most 3 s */
export const cgminerTimeoutMs = (c: AgentConfig): number => Math.min(3000, c.sampleIntervalMs * 2);

/** the registry name of each device kind's driver for this configuration */
export function driverNamesFor(c: AgentConfig): { gpu: string | null; asic: string | null } {
  const asic = c.asicDriver === 'cgminer' ? (c.asicEndpoints ? DRIVER_NAMES.cgminer : DRIVER_NAMES.cgminerSim) : DRIVER_NAMES.sim;
  return { gpu: c.simGpus > 0 ? DRIVER_NAMES.sim : null, asic: c.asicEndpoints || c.simAsics > 0 ? asic : null };
}

/**
 * Builds the drivers the configuration names, one factory call per name (a name serving both
 * kinds builds both at once, so the simulated GPUs and ASICs share one fleet and clock).
 */
export async function buildDrivers(c: AgentConfig, log: Logger, registry: DriverRegistry): Promise<DriverSet> {
  const names = driverNamesFor(c);
  const wanted = new Map<string, { gpus: boolean; asics: boolean }>();
  if (names.gpu) wanted.set(names.gpu, { gpus: true, asics: false });
  if (names.asic) wanted.set(names.asic, { gpus: wanted.get(names.asic)?.gpus ?? false, asics: true });
  const sets: DriverSet[] = [];
  try {
    for (const [name, kinds] of wanted) {
      const factory = registry.get(name);
      if (!factory) {
        throw new Error(`driver ${JSON.stringify(name)} (--asic-driver ${c.asicDriver}) is not built into this agent; it has ${registry.names().join(', ') || 'none'}`);
      }
      sets.push(await factory({ config: c, log: log.child({ driver: name }), ...kinds }));
    }
  } catch (err) {
    for (const s of sets) await closeSet(s);
    throw err;
  }
  return {
    drivers: sets.flatMap((s) => s.drivers),
    async close() {
      for (const s of sets) await closeSet(s);
    },
  };
}

async function closeSet(s: DriverSet): Promise<void> {
  for (const d of s.drivers) await d.close();
  await s.close();
}
