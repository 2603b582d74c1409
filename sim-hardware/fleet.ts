// One site's simulated devices: H100 GPUs and S21-family ASICs on a shared clock, each with its
// own random stream derived from (seed, device id), plus optional cgminer API servers and
// Antminer web control servers.
import { s21WebMiner } from './antminer-web.js';
import { createAntminerWebServer, type AntminerWebServer } from './antminer-web-server.js';
import { createCgminerServer, type CgminerServer, type CgminerServerLog } from './cgminer-server.js';
import type { Clock } from './clock.js';
import { createH100, type SimH100 } from './h100.js';
import { createRng } from './rng.js';
import { createS21, type SimS21 } from './s21.js';
import type { S21ModelId } from './s21-models.js';

export interface SimFleetOptions {
  site: string;
  gpus: number;
  asics: number;
  asicModel: S21ModelId;
  seed: number | string;
  clock: Clock;
  /** S21 start-up time in sim seconds (default 240) */
  startupSeconds?: number;
  ambientC?: number;
  /** S21s start asleep instead of mining (default false) */
  asicsAsleep?: boolean;
}

export interface CgminerEndpoint {
  deviceId: string;
  host: string;
  port: number;
  /** "host:port" */
  endpoint: string;
  /** the miner's web control port (80 on a real miner): get/set_miner_conf.cgi */
  webPort: number;
  /** "host:webPort" */
  webEndpoint: string;
}

export interface SimFleet {
  readonly site: string;
  readonly clock: Clock;
  readonly gpus: readonly SimH100[];
  readonly asics: readonly SimS21[];
  gpu(id: string): SimH100 | undefined;
  asic(id: string): SimS21 | undefined;
  /** advances every device to clock.now() */
  step(): void;
  /** steps on a real-time interval until stop() */
  start(tickMs: number): void;
  stop(): void;
  /**
   * One cgminer API server and one web control server (digest auth root/root) per ASIC.
   * basePort 0 = random ports, else basePort + index; the same for webBasePort (default 0).
   * Each cgminer request first brings the fleet to the present (stepOnRequest, default true);
   * false answers with the state of the last step (start() keeps stepping) — for thousands of
   * miners polled in one cycle, where every request stepping every miner (up to 100 times a
   * second: MIN_STEP_S) held the simulator's process busy.
   */
  serveCgminer(opts?: { host?: string; basePort?: number; webBasePort?: number; log?: CgminerServerLog; stepOnRequest?: boolean }): Promise<CgminerEndpoint[]>;
  /** idempotent: stops the interval and the servers */
  close(): Promise<void>;
}

export const gpuId = (site: string, n: number): string => `gpu-${site}-${String(n).padStart(4, '0')}`;
export const asicId = (site: string, n: number): string => `asic-${site}-${String(n).padStart(5, '0')}`;

/** sim seconds below which step() waits for more time to pass */
const MIN_STEP_S = 0.01;

export function createSimFleet(opts: SimFleetOptions): SimFleet {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(opts.site)) throw new RangeError(`bad site id ${JSON.stringify(opts.site)}`);
  for (const [k, v] of [['gpus', opts.gpus], ['asics', opts.asics]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${k} must be a non-negative integer, got ${v}`);
  }
  const root = createRng(opts.seed);
  const gpus = Array.from({ length: opts.gpus }, (_, i) => {
    const id = gpuId(opts.site, i + 1);
    return createH100({ id, rng: root.fork(id), ambientC: opts.ambientC });
  });
  const asics = Array.from({ length: opts.asics }, (_, i) => {
    const id = asicId(opts.site, i + 1);
    return createS21({
      id,
      model: opts.asicModel,
      rng: root.fork(id),
      ambientC: opts.ambientC,
      startupSeconds: opts.startupSeconds,
      initialState: opts.asicsAsleep ? 'sleeping' : 'mining',
    });
  });
  const gpuById = new Map(gpus.map((g) => [g.id, g]));
  const asicById = new Map(asics.map((a) => [a.id, a]));

  let lastMs = opts.clock.now();
  let timer: NodeJS.Timeout | undefined;
  const servers: Array<CgminerServer | AntminerWebServer> = [];
  let closing: Promise<void> | undefined;

  const fleet: SimFleet = {
    site: opts.site,
    clock: opts.clock,
    gpus,
    asics,
    gpu: (id) => gpuById.get(id),
    asic: (id) => asicById.get(id),
    step() {
      const now = opts.clock.now();
      const dt = (now - lastMs) / 1000;
      // Every cgminer or web request steps the fleet so its reply is current; a burst of
      // requests (a trip reaches every miner at once) would step all N devices N times. Time
      // under 10 ms is carried to the next step instead.
      if (dt < MIN_STEP_S) return;
      lastMs = now;
      for (const g of gpus) g.step(dt);
      for (const a of asics) a.step(dt);
    },
    start(tickMs) {
      if (!(tickMs > 0)) throw new RangeError(`tickMs must be positive, got ${tickMs}`);
      fleet.stop();
      timer = setInterval(() => fleet.step(), tickMs);
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
    async serveCgminer(o = {}) {
      if (closing) throw new Error('fleet is closed');
      const host = o.host ?? '127.0.0.1';
      const basePort = o.basePort ?? 0;
      const webBasePort = o.webBasePort ?? 0;
      const out: CgminerEndpoint[] = [];
      for (const [i, a] of asics.entries()) {
        // Each request first advances the fleet, so a reply is current even without start().
        const miner = o.stepOnRequest === false ? a : { cgminerStatus: () => (fleet.step(), a.cgminerStatus()) };
        const srv = await createCgminerServer({ miner, host, port: basePort === 0 ? 0 : basePort + i, clock: opts.clock, log: o.log });
        servers.push(srv);
        const web = await createAntminerWebServer({
          miner: s21WebMiner(a, () => fleet.step()),
          host,
          port: webBasePort === 0 ? 0 : webBasePort + i,
          log: o.log,
        });
        servers.push(web);
        out.push({
          deviceId: a.id, host: srv.host, port: srv.port, endpoint: `${srv.host}:${srv.port}`,
          webPort: web.port, webEndpoint: `${web.host}:${web.port}`,
        });
      }
      return out;
    },
    close() {
      closing ??= (async () => {
        fleet.stop();
        await Promise.all(servers.map((s) => s.close()));
      })();
      return closing;
    },
  };
  return fleet;
}
