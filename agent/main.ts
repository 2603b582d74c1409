// Agent process: configuration, wiring and signals only. The simulator's drivers are registered
// here (agent/main-sim.ts), the one place the agent reaches sim-hardware/.
// first: V8 flags that must be set before the agent allocates (agent/heap-flags.ts)
import './heap-flags.js';
import { createAgent } from './agent.js';
import { ConfigError, parseAgentArgs, USAGE } from './config.js';
import { createLogger } from './log.js';
import { simDriverRegistry } from './main-sim.js';
import { AGENT_VERSION } from './version.js';

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
