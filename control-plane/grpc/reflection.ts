// gRPC server reflection, so generic clients (grpcurl, grpcui, Postman) can list and call the
// services with no copy of our .proto files. It reads the same .proto files the code is
// generated from.
import { fileURLToPath } from 'node:url';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { Server } from '@grpc/grpc-js';

const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

export function addReflection(server: Pick<Server, 'addService'>): void {
  const pkg = loadSync(['hcp/v1/gateway.proto', 'hcp/v1/fleet.proto', 'hcp/v1/telemetry.proto', 'hcp/v1/commands.proto'], {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
  });
  new ReflectionService(pkg).addToServer(server);
}
