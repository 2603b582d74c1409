// The control plane's gRPC server (AgentGateway, Fleet, reflection), plaintext or TLS.
import { Server, ServerCredentials, type ServiceDefinition, type UntypedServiceImplementation } from '@grpc/grpc-js';
import { tolerantService } from './malformed.js';

export interface GrpcServer {
  readonly port: number;
  close(): Promise<void>;
}

/** PEM material; with clientCa every client must present a certificate that CA issued (mTLS) */
export interface GrpcServerTls {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
}

/**
 * TLS when given, else plaintext. With a client CA, grpc-js asks for a client certificate and
 * refuses the handshake without one it can verify against that CA (checkClientCertificate);
 * the CA is used only for that, as the server needs no roots of its own.
 */
export function serverCredentials(tls?: GrpcServerTls): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  return ServerCredentials.createSsl(tls.clientCa ?? null, [{ cert_chain: tls.cert, private_key: tls.key }], !!tls.clientCa);
}

export async function startGrpcServer(o: {
  host: string;
  port: number;
  services: Array<{ service: ServiceDefinition; impl: UntypedServiceImplementation }>;
  /** adds more services (reflection) */
  extend?: (server: Server) => void;
  /** TLS (and mTLS with clientCa); plaintext when absent */
  tls?: GrpcServerTls;
}): Promise<GrpcServer> {
  const server = new Server({
    // Agents hold one stream for days; keepalive pings find dead peers behind NAT.
    'grpc.keepalive_time_ms': 20_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  // a request that does not decode reaches its handler as a marker, refused there (malformed.ts)
  for (const s of o.services) server.addService(tolerantService(s.service), s.impl);
  o.extend?.(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${o.host}:${o.port}`, serverCredentials(o.tls), (err, p) => (err ? reject(err) : resolve(p))),
  );
  let closing: Promise<void> | null = null;
  return {
    port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 3000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return closing;
    },
  };
}
