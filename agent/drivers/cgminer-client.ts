// Client for the cgminer/bmminer API on TCP 4028: one request per connection, read until EOF,
// strip the trailing NUL, parse (shared/reference/device-protocols.md "Transport").
import net from 'node:net';

export type CgminerErrorCode = 'timeout' | 'refused' | 'network' | 'bad_reply' | 'api_error';

/** The one error type this client throws; `code` is stable, the message is for humans. */
export class CgminerError extends Error {
  override readonly name = 'CgminerError';
  constructor(
    readonly code: CgminerErrorCode,
    message: string,
    /** the STATUS Code when code is 'api_error' (14 invalid command, 45 access denied, …) */
    readonly apiCode?: number,
  ) {
    super(message);
  }
}

export interface CgminerQuery {
  host: string;
  port: number;
  /** "summary", or report commands joined with "+" ("stats+summary") */
  command: string;
  parameter?: string;
  timeoutMs: number;
}

/** A full reply is a few KB; anything past this is not a cgminer reply. */
const MAX_REPLY_BYTES = 1 << 20;

export type CgminerReply = Record<string, unknown>;

/**
 * Some bmminer builds emit invalid JSON: joined sections or STATS entries glued as `}{`, and
 * stray commas before a closing bracket. Repair the common cases (as pyasic does) before parsing.
 */
export function sanitizeCgminerJson(text: string): string {
  return text
    .replace(/\0/g, '')
    .replace(/}\s*{/g, '},{')
    .replace(/,\s*([}\]])/g, '$1')
    .trim();
}

interface StatusEntry {
  STATUS?: unknown;
  Code?: unknown;
  Msg?: unknown;
}

function statusError(reply: CgminerReply, where: string): CgminerError | undefined {
  const st = Array.isArray(reply.STATUS) ? (reply.STATUS[0] as StatusEntry | undefined) : undefined;
  if (!st) return undefined;
  if (st.STATUS === 'E' || st.STATUS === 'F') {
    const code = typeof st.Code === 'number' ? st.Code : undefined;
    return new CgminerError('api_error', `${where}: ${String(st.Msg ?? 'error')} (code ${code ?? '?'})`, code);
  }
  return undefined;
}

/** Checks the STATUS of a single or joined reply; throws the first error STATUS found. */
function checkStatus(reply: CgminerReply, command: string): void {
  if (!command.includes('+')) {
    const err = statusError(reply, command);
    if (err) throw err;
    return;
  }
  for (const name of command.split('+')) {
    const section = reply[name];
    if (!Array.isArray(section) || typeof section[0] !== 'object' || section[0] === null) {
      // A whole-reply error (e.g. the firmware does not support joins) has a top-level STATUS.
      const err = statusError(reply, command);
      if (err) throw err;
      throw new CgminerError('bad_reply', `joined reply has no '${name}' section`);
    }
    const err = statusError(section[0] as CgminerReply, name);
    if (err) throw err;
  }
}

export function parseCgminerReply(raw: string, command: string): CgminerReply {
  const text = sanitizeCgminerJson(raw);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CgminerError('bad_reply', `reply to '${command}' is not JSON: ${JSON.stringify(text.slice(0, 80))}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CgminerError('bad_reply', `reply to '${command}' is not a JSON object`);
  }
  const reply = parsed as CgminerReply;
  checkStatus(reply, command);
  return reply;
}

export function queryCgminer(q: CgminerQuery): Promise<CgminerReply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const socket = net.connect({ host: q.host, port: q.port });

    const fail = (err: CgminerError): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    // One deadline for connect + write + read, so a device that accepts and never answers
    // costs at most timeoutMs.
    const timer = setTimeout(
      () => fail(new CgminerError('timeout', `${q.host}:${q.port} did not answer '${q.command}' within ${q.timeoutMs} ms`)),
      q.timeoutMs,
    );

    socket.on('connect', () => {
      const req: Record<string, string> = { command: q.command };
      if (q.parameter !== undefined) req.parameter = q.parameter;
      socket.write(JSON.stringify(req));
    });
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REPLY_BYTES) return fail(new CgminerError('bad_reply', `reply exceeds ${MAX_REPLY_BYTES} bytes`));
      chunks.push(chunk);
    });
    socket.on('end', () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      try {
        resolve(parseCgminerReply(Buffer.concat(chunks).toString('utf8'), q.command));
      } catch (err) {
        reject(err instanceof CgminerError ? err : new CgminerError('bad_reply', String(err)));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code: CgminerErrorCode = err.code === 'ECONNREFUSED' ? 'refused' : err.code === 'ETIMEDOUT' ? 'timeout' : 'network';
      fail(new CgminerError(code, `${q.host}:${q.port}: ${err.message}`));
    });
  });
}
