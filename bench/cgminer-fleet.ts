// Simulated S21s serving the cgminer API on loopback, in a process of their own, for
// `npm run bench:agent` (bench/agent.ts): the agent polls them over TCP as it would real miners.
//   tsx bench/cgminer-fleet.ts --asics 5000 --out endpoints.txt
// Writes "host:port,host:port,…" to --out once every miner listens, then runs until SIGTERM.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createSimClock } from '../sim-hardware/clock.js';
import { createSimFleet } from '../sim-hardware/fleet.js';

const { values } = parseArgs({ options: { asics: { type: 'string', default: '5000' }, out: { type: 'string' }, site: { type: 'string', default: 'bench-cgminer' } } });
const asics = Number(values.asics);
if (!Number.isInteger(asics) || asics < 1 || asics > 20_000 || !values.out) {
  console.error('usage: tsx bench/cgminer-fleet.ts --asics N (1–20000) --out FILE [--site ID]');
  process.exit(2);
}
const fleet = createSimFleet({ site: values.site!, gpus: 0, asics, asicModel: 's21-xp', seed: 1, clock: createSimClock({ speed: 1 }), startupSeconds: 1 });
fleet.start(1000);
const endpoints = await fleet.serveCgminer({ host: '127.0.0.1' });
writeFileSync(values.out, endpoints.map((e) => e.endpoint).join(','));
console.log(JSON.stringify({ msg: 'miners listening', miners: endpoints.length }));
const stop = () => void fleet.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
