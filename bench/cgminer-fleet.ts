// Simulated S21s serving the cgminer API on loopback, in processes of their own, for
// `npm run bench:agent` (bench/agent.ts): the agent polls them over TCP as it would real miners.
//   tsx bench/cgminer-fleet.ts --asics 5000 --out endpoints.txt [--procs N]
// Writes "host:port,host:port,…" to --out once every miner listens, then runs until SIGTERM.
//
// Cheap by construction, so that the benchmark measures the agent: the miners are stepped once a
// second (fleet.start) and a request answers with that state instead of stepping all of them
// first (serveCgminer's stepOnRequest: at 5,000 miners per-request steps kept one process busy and
// no poll cycle completed), and with --procs (default one per 2,500 miners) the miners are split
// across processes, each with its own slice, event loop and sockets (a miner has two: cgminer
// API and web control).
import { fork, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createSimClock } from '../sim-hardware/clock.js';
import { createSimFleet } from '../sim-hardware/fleet.js';

const { values } = parseArgs({
  options: {
    asics: { type: 'string', default: '5000' }, out: { type: 'string' }, site: { type: 'string', default: 'bench-cgminer' },
    procs: { type: 'string' },
    // a child's slice (set by the parent): its index, for its site and seed
    slice: { type: 'string' },
  },
});
const asics = Number(values.asics);
const procs = values.procs === undefined ? Math.max(1, Math.ceil(asics / 2500)) : Number(values.procs);
if (!Number.isInteger(asics) || asics < 1 || asics > 20_000 || !Number.isInteger(procs) || procs < 1 || procs > 16 || (!values.out && values.slice === undefined)) {
  console.error('usage: tsx bench/cgminer-fleet.ts --asics N (1–20000) --out FILE [--procs 1–16] [--site ID]');
  process.exit(2);
}

/** one process's miners: serves them and says where, as a list of endpoints */
async function serve(n: number, site: string, seed: string): Promise<{ endpoints: string[]; close: () => Promise<void> }> {
  const fleet = createSimFleet({ site, gpus: 0, asics: n, asicModel: 's21-xp', seed, clock: createSimClock({ speed: 1 }), startupSeconds: 1 });
  fleet.start(1000);
  const eps = await fleet.serveCgminer({ host: '127.0.0.1', stepOnRequest: false });
  return { endpoints: eps.map((e) => e.endpoint), close: () => fleet.close() };
}

if (values.slice !== undefined) {
  // a child: serve the slice, hand the endpoints to the parent over IPC, stop with it
  const served = await serve(asics, `${values.site}-${values.slice}`, `1/${values.slice}`);
  process.send!({ endpoints: served.endpoints });
  const stop = () => void served.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('disconnect', stop);
} else if (procs === 1) {
  const served = await serve(asics, values.site!, '1');
  writeFileSync(values.out!, served.endpoints.join(','));
  console.log(JSON.stringify({ msg: 'miners listening', miners: asics, procs }));
  const stop = () => void served.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  const children: ChildProcess[] = [];
  const slices = await Promise.all(
    Array.from({ length: procs }, (_, i) => {
      const n = Math.floor(asics / procs) + (i < asics % procs ? 1 : 0);
      const child = fork(import.meta.filename, ['--asics', String(n), '--site', values.site!, '--slice', String(i)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      children.push(child);
      return new Promise<string[]>((resolve, reject) => {
        child.once('message', (m: { endpoints: string[] }) => resolve(m.endpoints));
        child.once('exit', (code) => reject(new Error(`miner process ${i} exited (${code}) before listening`)));
      });
    }),
  ).catch((err: Error) => {
    for (const c of children) c.kill('SIGTERM');
    console.error(err.message);
    process.exit(1);
  });
  writeFileSync(values.out!, slices.flat().join(','));
  console.log(JSON.stringify({ msg: 'miners listening', miners: asics, procs }));
  const stop = () => {
    let left = children.length;
    for (const c of children) {
      c.once('exit', () => --left === 0 && process.exit(0));
      c.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
