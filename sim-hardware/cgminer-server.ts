// TCP server for the cgminer API (port 4028 on a real Antminer). One request per connection:
// read up to ~4 KB, reply, close — never wait for the client to close first, since clients
// write the request and then read until EOF (shared/reference/device-protocols.md "Transport").
import net from 'node:net';
import type { CgminerMiner } from './cgminer-status.js';
import type { Clock } from './clock.js';
import { handleCgminerRequest } from './cgminer-protocol.js';

/** cgminer reads the request into a fixed buffer of about this size */
const MAX_REQUEST_BYTES = 4096;
/** a request with no recognisable end is answered after this much silence (cgminer does one recv) */
const IDLE_ANSWER_MS = 150;
/** a connection that sends nothing is dropped after this long */
const CONNECT_IDLE_MS = 5_000;

export interface CgminerServerLog {
  warn(obj: object, msg: string): void;
}

export interface CgminerServerOptions {
  miner: CgminerMiner;
  host?: string;
  /** 0 = a random free port */
  port: number;
  clock: Clock;
  log?: CgminerServerLog;
}

export interface CgminerServer {
  readonly host: string;
  readonly port: number;
  /** idempotent; drops open connections */
  close(): Promise<void>;
}

/** True when the bytes so far form a whole request, so we can answer before EOF. */
function looksComplete(text: string): boolean {
  const t = text.replace(/[\0\s]+$/, '').trim();
  if (t.startsWith('{')) {
    try {
      JSON.parse(t);
      return true;
    } catch {
      return false;
    }
  }
  return t.includes('|') || /[\r\n]/.test(text);
}

export async function createCgminerServer(opts: CgminerServerOptions): Promise<CgminerServer> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<net.Socket>();

  // allowHalfOpen: a client that half-closes after its request must still get the reply
  // (with the default, Node would end our side as soon as the client's FIN arrives).
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    let buf = Buffer.alloc(0);
    let answered = false;
    let idle: NodeJS.Timeout | undefined;

    const answer = (): void => {
      if (answered) return;
      answered = true;
      clearTimeout(idle);
      let reply: string;
      try {
        reply = handleCgminerRequest(buf.subarray(0, MAX_REQUEST_BYTES).toString('utf8'), opts.miner, opts.clock.now() / 1000);
      } catch (err) {
        // The protocol module answers every malformed request itself; this is a bug guard.
        opts.log?.warn({ err }, 'cgminer request handler failed');
        socket.destroy();
        return;
      }
      socket.end(reply);
      // If the client never reads or closes, do not hold the socket forever.
      setTimeout(() => socket.destroy(), CONNECT_IDLE_MS).unref();
    };

    idle = setTimeout(() => socket.destroy(), CONNECT_IDLE_MS);
    socket.on('data', (chunk: Buffer) => {
      if (answered) return;
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= MAX_REQUEST_BYTES || looksComplete(buf.toString('utf8'))) return answer();
      clearTimeout(idle);
      idle = setTimeout(answer, IDLE_ANSWER_MS);
    });
    socket.on('end', answer);
    socket.on('error', (err) => opts.log?.warn({ err }, 'cgminer connection error'));
    socket.on('close', () => {
      clearTimeout(idle);
      sockets.delete(socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => opts.log?.warn({ err }, 'cgminer server error'));
  const addr = server.address() as net.AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    host,
    port: addr.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}
