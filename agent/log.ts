import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, site: string): Logger {
  return pino({ name: 'hcp-agent', level, base: { pid: process.pid, site }, timestamp: pino.stdTimeFunctions.isoTime });
}
