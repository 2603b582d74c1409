import { pino, type Logger } from 'pino';

export type { Logger };

// The site credential is never logged; these paths are censored in case it is ever passed along
// inside a logged object (connection options, metadata).
const SECRET_FIELDS = ['authorization', 'password', 'token'];
const REDACT_PATHS = [...SECRET_FIELDS, ...SECRET_FIELDS.map((f) => `*.${f}`)];

export function createLogger(level: string, site: string): Logger {
  return pino({ name: 'hcp-agent', level, base: { pid: process.pid, site }, timestamp: pino.stdTimeFunctions.isoTime, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/** a URL with any password in it replaced by *** */
export function withoutPassword(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@\s]*@/i, '$1:***@');
}
