// The entry point's simulator wiring: registers the simulated fleet as the agent's `sim` driver
// and simulated miners behind the cgminer API as `cgminer-sim`. This file and agent/main.ts are
// the only agent files that import sim-hardware/ (agent/core-imports.test.ts checks).
import { createSimDriver } from '../sim-hardware/agent-driver.js';
import { createSimClock, type Clock } from '../sim-hardware/clock.js';
import { createSimFleet, type SimFleet } from '../sim-hardware/fleet.js';
import type { AgentConfig } from './config.js';
import { createCgminerDriver } from './drivers/cgminer-driver.js';
import { cgminerTimeoutMs, createDriverRegistry, DRIVER_NAMES, type DriverContext, type DriverFactory, type DriverRegistry } from './drivers/registry.js';

export interface SimWiringOptions {
  /** the simulated devices' clock; default a sim clock at --sim-speed */
  clock?: (c: AgentConfig) => Clock;
  /** simulated S21s boot asleep instead of mining (tests) */
  asicsAsleep?: boolean;
  /** every fleet built, as it is built (tests watch the devices) */
  onFleet?: (fleet: SimFleet) => void;
}

function fleetFor(ctx: DriverContext, o: SimWiringOptions): SimFleet {
  const c = ctx.config;
  const fleet = createSimFleet({
    site: c.site,
    asicModel: c.asicModel,
    seed: c.seed,
    clock: o.clock?.(c) ?? createSimClock({ speed: c.simSpeed }),
    startupSeconds: c.simStartupS,
    gpus: ctx.gpus ? c.simGpus : 0,
    asics: ctx.asics ? c.simAsics : 0,
    asicsAsleep: o.asicsAsleep,
  });
  o.onFleet?.(fleet);
  return fleet;
}

/** the in-process simulated fleet (GPUs and/or ASICs) */
export function simFactory(o: SimWiringOptions = {}): DriverFactory {
  return async (ctx) => {
    const fleet = fleetFor(ctx, o);
    return { drivers: [createSimDriver(fleet)], close: () => fleet.close() };
  };
}

/** simulated S21s serving the cgminer API and web control on loopback, read by the cgminer driver */
export function cgminerSimFactory(o: SimWiringOptions = {}): DriverFactory {
  return async (ctx) => {
    const c = ctx.config;
    const fleet = fleetFor({ ...ctx, gpus: false }, o);
    try {
      fleet.start(250);
      const endpoints = await fleet.serveCgminer({ host: c.simApiHost, basePort: c.simApiPortBase });
      ctx.log.info({ miners: endpoints.length, first: endpoints[0]?.endpoint, last: endpoints.at(-1)?.endpoint }, 'simulated miners serve the cgminer API');
      const devices = endpoints.map((e) => ({ id: e.deviceId, host: e.host, port: e.port, webPort: e.webPort, model: c.asicModel }));
      const drivers = devices.length ? [createCgminerDriver({ devices, timeoutMs: cgminerTimeoutMs(c) })] : [];
      return { drivers, close: () => fleet.close() };
    } catch (err) {
      await fleet.close();
      throw err;
    }
  };
}

/** the core's registry with the simulator's drivers added */
export function simDriverRegistry(o: SimWiringOptions = {}): DriverRegistry {
  return createDriverRegistry().register(DRIVER_NAMES.sim, simFactory(o)).register(DRIVER_NAMES.cgminerSim, cgminerSimFactory(o));
}
