import { pino, type Logger } from 'pino';

export type { Logger };

// No secret is ever logged: nothing logs a key, a token or a password on purpose, and these
// paths are censored in case one is ever passed along inside a logged object (a request's
// headers, a connection's options).
const SECRET_FIELDS = ['authorization', 'password', 'token', 'secret', 'adminKey', 'HCP_ADMIN_KEY'];
export const REDACT_PATHS = [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`), ...SECRET_FIELDS.map((f) => `*.*.${f}`)];

/** JSON lines on stdout; each component takes a child logger ({ component }). */
export function createLogger(level: string, name = 'control-plane'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}
