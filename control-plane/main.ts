// Control-plane process: configuration, wiring and signals only.
import { ConfigError, loadControlPlaneConfig } from './config.js';
import { createControlPlane } from './control-plane.js';
import { createLogger } from './log.js';

let config;
try {
  config = loadControlPlaneConfig();
} catch (err) {
  if (err instanceof ConfigError) {
    process.stderr.write(`hcp control-plane: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}

const log = createLogger(config.LOG_LEVEL);
let cp;
try {
  cp = await createControlPlane(config, log);
} catch (err) {
  log.fatal({ err }, 'control plane failed to start');
  process.exit(1);
}

let stopping = false;
const stop = (signal: string) => {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'shutting down');
  // A deadline forces the exit if a dependency hangs.
  setTimeout(() => {
    log.error('shutdown deadline passed; exiting');
    process.exit(1);
  }, 10_000).unref();
  cp.close().then(
    () => process.exit(0),
    (err) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    },
  );
};
process.on('SIGINT', () => stop('SIGINT'));
process.on('SIGTERM', () => stop('SIGTERM'));
