// Agent process: configuration, wiring and signals only. The simulator's drivers are registered
// here (agent/main-sim.ts), the one place the agent reaches sim-hardware/.
import { setFlagsFromString } from 'node:v8';
import { createAgent } from './agent.js';
import { ConfigError, parseAgentArgs, USAGE } from './config.js';
import { createLogger } from './log.js';
import { simDriverRegistry } from './main-sim.js';
import { AGENT_VERSION } from './version.js';

// No allocation-site pretenuring (a V8 flag, read at every GC, so it may be set now; Node 20's
// single executable takes no execArgv): in the first seconds, while the young generation is 1 MB,
// a scavenge in the middle of a sampling tick finds every sample of the tick alive, V8 decides
// that site's objects live long and from then on allocates every device's sample of every tick
// in the old generation. At 5,000 ASICs that was 2 MB/s of garbage there and an old generation
// growing 40 → 110 MB between collections (bench:agent, docs in README "Capacity").
setFlagsFromString('--no-allocation-site-pretenuring');

let parsed;
try {
  parsed = parseAgentArgs(process.argv.slice(2));
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hcp-agent: ${err.message}\n\nRun hcp-agent --help for the options.\n`);
    process.exit(2);
  }
  throw err;
}
if ('help' in parsed) {
  process.stdout.write(USAGE);
  process.exit(0);
}
if ('version' in parsed) {
  process.stdout.write(`${AGENT_VERSION}\n`);
  process.exit(0);
}

const config = parsed.config;
const log = createLogger(config.logLevel, config.site);
let agent;
try {
  agent = await createAgent(config, log, { drivers: simDriverRegistry() });
} catch (err) {
  log.fatal({ err }, 'agent failed to start');
  process.exit(1);
}

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  setTimeout(() => {
    log.error('shutdown deadline passed; exiting');
    process.exit(1);
  }, 5_000).unref();
  agent.close().then(
    () => process.exit(0),
    (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
