// The REST API's listener: http, or https when given a certificate and key (HCP_TLS_CERT /
// HCP_TLS_KEY). REST callers authenticate with API keys, so no client certificate is asked for
// here; mTLS is for agents (gRPC, mqtts).
import { createServer as createHttpsServer } from 'node:https';
import { serve, type ServerType } from '@hono/node-server';

/** PEM certificate (chain) and private key */
export interface HttpTls {
  cert: Buffer;
  key: Buffer;
}

export type FetchHandler = (req: Request) => Response | Promise<Response>;

/** listens on hostname:port (0 = any free port) and resolves once listening, with the port */
export function listenHttp(fetch: FetchHandler, hostname: string, port: number, tls?: HttpTls): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve, reject) => {
    const server = tls
      ? serve({ fetch, hostname, port, createServer: createHttpsServer, serverOptions: { cert: tls.cert, key: tls.key } }, (info) => resolve({ server, port: info.port }))
      : serve({ fetch, hostname, port }, (info) => resolve({ server, port: info.port }));
    server.once('error', reject);
  });
}
