// npm run bench:trip -- [--miners 200] [--rounds 20]
//
// How fast the agent's under-frequency trip sleeps Antminers on stock firmware, where the only
// way to sleep a miner is its web endpoint (digest auth, set_miner_conf.cgi). N simulated miners
// serve that endpoint from a child process (the site network); this process is the agent side:
// the cgminer driver and the grid trip, as the agent wires them. Each round wakes every miner
// (untimed), then times, from the frequency reading to the last miner's reply:
//   - trip: the armed trip, as shipped (confs read on arming: one request per miner), after the
//     miners have closed their idle connections — a real trip comes after a quiet spell, so it
//     opens a TCP connection per miner;
//   - pooled: the same on connections still open;
//   - unprepared: the same ops through a driver that knows nothing yet (challenge, read, write
//     per miner: what every trip cost before confs were kept and nonces reused), on connections
//     the pool still holds — so it flatters the old path a little.
// ERCOT FFR wants the load gone within 0.25 s. Prints a JSON line as its last line.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { createCgminerDriver, type CgminerDeviceConfig } from '../agent/drivers/cgminer-driver.js';
import type { DeviceOp } from '../agent/drivers/driver.js';
import { createGridTrip } from '../agent/grid/grid-trip.js';
import { createAgentMetrics } from '../agent/metrics.js';
import { encodeFrequency } from '../proto/market-topics.js';
import { createAntminerWebServer } from '../sim-hardware/antminer-web-server.js';
import { s21WebMiner } from '../sim-hardware/antminer-web.js';
import { createSimClock } from '../sim-hardware/clock.js';
import { createSimFleet } from '../sim-hardware/fleet.js';
import { waitFor } from '../test/harness/wait-for.js';
import { pct, round1 } from './stats.js';

/** the miners close idle connections after this (lighttpd: 5 s; short here to keep rounds quick) */
const IDLE_CLOSE_MS = 100;

const { values } = parseArgs({
  options: { miners: { type: 'string', default: '200' }, rounds: { type: 'string', default: '20' }, serve: { type: 'boolean', default: false } },
});
const N = Number(values.miners);
const ROUNDS = Number(values.rounds);
if (!(Number.isInteger(N) && N > 0 && Number.isInteger(ROUNDS) && ROUNDS > 2)) {
  console.error('usage: npm run bench:trip -- --miners N (≥ 1) --rounds R (≥ 3)');
  process.exit(2);
}

if (values.serve) {
  // The site network: N miners, one web port each. Prints the ports, serves until stdin closes.
  const fleet = createSimFleet({ site: 'bench-1', gpus: 0, asics: N, asicModel: 's21', seed: 1, clock: createSimClock({ speed: 1 }), startupSeconds: 1 });
  const servers = await Promise.all(fleet.asics.map((a) => createAntminerWebServer({ miner: s21WebMiner(a, () => fleet.step()), port: 0, keepAliveTimeoutMs: IDLE_CLOSE_MS })));
  console.log(JSON.stringify({ ports: servers.map((s) => s.port), ids: fleet.asics.map((a) => a.id) }));
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else {
  await main();
}

async function main(): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--serve', '--miners', String(N), '--rounds', String(ROUNDS)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const first = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`miner process exited with ${code}`)));
  });
  const { ports, ids } = JSON.parse(first) as { ports: number[]; ids: string[] };
  const devices: CgminerDeviceConfig[] = ids.map((id, i) => ({ id, host: '127.0.0.1', port: 4028, webPort: ports[i]!, model: 's21' }));

  const mining = (enabled: boolean) => ids.map((deviceId): DeviceOp => ({ kind: 'mining', deviceId, enabled, powerTargetW: null }));
  const waker = createCgminerDriver({ devices, timeoutMs: 5000 });
  const driver = createCgminerDriver({ devices, timeoutMs: 5000 });
  const listening = new Map<string, (p: Buffer) => void>();
  let tripped: string[] = [];
  const trip = createGridTrip({
    drivers: [driver], listen: (t, fn) => listening.set(t, fn), unlisten: (t) => listening.delete(t),
    report: (f) => (tripped = f.deviceIds), changed: () => {}, log: pino({ level: 'error' }), metrics: createAgentMetrics(),
  });
  const reading = (hz: number) => Buffer.from(encodeFrequency({ ts: new Date().toISOString(), hz }));

  const wake = async () => {
    const res = await waker.apply(mining(true));
    if (res.some((r) => !r.ok)) throw new Error(`wake failed: ${res.find((r) => !r.ok)!.message}`);
  };
  trip.arm({ enabled: true, region: 'ercot', thresholdHz: 59.7, deviceIds: [] });
  await driver.prepare!(ids); // arming prepares in the background; wait for it here, once
  const afterIdle: number[] = [];
  const pooled: number[] = [];
  const unprepared: number[] = [];
  let failures = 0;
  const fire = async () => {
    const t0 = performance.now();
    listening.get('hcp/v1/grid/ercot/frequency')!(reading(59.6));
    await trip.idle();
    const ms = performance.now() - t0;
    failures += N - tripped.length;
    listening.get('hcp/v1/grid/ercot/frequency')!(reading(60));
    await waitFor(() => trip.state()?.fired === false, { message: 'trip re-armed' });
    return ms;
  };
  for (let r = 0; r < ROUNDS; r++) {
    await wake();
    // a quiet spell: the miners close the trip driver's idle connections
    await new Promise((resolve) => setTimeout(resolve, 3 * IDLE_CLOSE_MS));
    const idleMs = await fire();
    await wake();
    const pooledMs = await fire();

    await wake();
    const fresh = createCgminerDriver({ devices, timeoutMs: 5000 });
    const c0 = performance.now();
    const res = await fresh.apply(mining(false));
    const cms = performance.now() - c0;
    failures += res.filter((x) => !x.ok).length;
    await fresh.close();
    if (r >= 2) {
      // the first rounds warm up the JIT and the connection pools
      afterIdle.push(idleMs);
      pooled.push(pooledMs);
      unprepared.push(cms);
    }
  }
  await driver.close();
  await waker.close();
  child.stdin!.end();
  console.log(JSON.stringify({
    bench: 'trip',
    miners: N,
    rounds: ROUNDS,
    trip_p50_ms: round1(pct(afterIdle, 50)),
    trip_p99_ms: round1(pct(afterIdle, 99)),
    pooled_p50_ms: round1(pct(pooled, 50)),
    pooled_p99_ms: round1(pct(pooled, 99)),
    unprepared_p50_ms: round1(pct(unprepared, 50)),
    unprepared_p99_ms: round1(pct(unprepared, 99)),
    speedup_p50: round1(pct(unprepared, 50) / pct(afterIdle, 50)),
    failures,
  }));
  process.exit(failures ? 1 : 0);
}
