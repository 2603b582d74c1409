// The REST API's listener: http, or https when given a certificate and key (HCP_TLS_CERT /
// HCP_TLS_KEY). REST callers authenticate with API keys, so no client certificate is asked for
// here; mTLS is for agents (gRPC, mqtts).
import { createServer as createHttpServer, maxHeaderSize, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { getRequestListener, RequestError, type ServerType } from '@hono/node-server';
import { errorBody } from './errors.js';

/** PEM certificate (chain) and private key */
export interface HttpTls {
  cert: Buffer;
  key: Buffer;
}

export type FetchHandler = (req: Request) => Response | Promise<Response>;

/** listens on hostname:port (0 = any free port) and resolves once listening, with the port */
export function listenHttp(fetch: FetchHandler, hostname: string, port: number, tls?: HttpTls): Promise<{ server: ServerType; port: number }> {
  // getRequestListener rather than serve(), whose adaptor drops the errorHandler option
  const listener = getRequestListener(fetch, { hostname, errorHandler: requestErrorResponse });
  const server: Server = tls ? createHttpsServer({ cert: tls.cert, key: tls.key }, listener) : createHttpServer(listener);
  answerClientErrors(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, hostname, () => resolve({ server: server as ServerType, port: (server.address() as AddressInfo).port }));
  });
}

const jsonError = (status: number, code: string, reason: string, message: string) =>
  new Response(JSON.stringify(errorBody(code, reason, message)), { status, headers: { 'content-type': 'application/json' } });

/**
 * A request the adaptor cannot turn into a fetch Request (a backslash in the path, a Host header
 * that is not a host) is the client's error: 400 with the error body, where the adaptor would
 * answer an empty 400.
 */
function requestErrorResponse(err: unknown): Response {
  if (err instanceof RequestError) return jsonError(400, 'invalid_argument', 'malformed_request', `the request cannot be read: ${err.message}`);
  return jsonError(500, 'internal', 'internal', 'internal error');
}

/**
 * A request Node's parser refuses before any route sees it (headers past --max-http-header-size,
 * a malformed request line, a timeout) is answered like every other refusal, with the JSON error
 * body, where Node's default would be a bare status line.
 */
export function answerClientErrors(server: Server): void {
  server.on('clientError', (err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex & { _httpMessage?: { headersSent?: boolean } }) => {
    if (err.code === 'ECONNRESET' || !socket.writable || socket._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, text, reason, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'headers_too_large', `the request line and headers are larger than ${maxHeaderSize} bytes`]
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'request_timeout', 'the request was not received in time']
          : [400, 'Bad Request', 'malformed_request', 'the request is not valid HTTP/1.1'];
    const body = JSON.stringify(errorBody('invalid_argument', reason, message));
    // the answer to a HEAD has no body (RFC 9110 §9.3.2); the request line is in the packet the parser refused
    const head = err.rawPacket?.subarray(0, 5).toString('latin1').toUpperCase() === 'HEAD ';
    socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${head ? '' : body}`);
  });
}
