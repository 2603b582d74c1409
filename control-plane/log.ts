import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout; each component takes a child logger ({ component }). */
export function createLogger(level: string, name = 'control-plane'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
