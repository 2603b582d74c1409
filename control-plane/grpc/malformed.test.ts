// Bytes that do not decode reach the handler as a marker (so it can answer INVALID_ARGUMENT with a
// reason) instead of making grpc-js answer INTERNAL.
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FleetService, type GetStatusRequest } from '../../proto/gen/hcp/v1/fleet.js';
import { holdsNul, isMalformed, malformedReason, tolerantService, withoutNul } from './malformed.js';
import { startGrpcServer, type GrpcServer } from './server.js';
import { grpcError } from './status.js';

it('decodes what decodes, and marks what does not', () => {
  const t = tolerantService(FleetService);
  expect(t.getStatus.requestDeserialize(Buffer.alloc(0))).toEqual({});
  const bad = t.setMining.requestDeserialize(Buffer.from([0x0f]));
  expect(isMalformed(bad)).toBe(true);
  expect(malformedReason(bad as never)).toMatch(/wire type/i);
  expect(isMalformed({})).toBe(false);
});

it('finds a NUL in any string of a decoded message', () => {
  expect(holdsNul({ site: 'a', deviceIds: ['b', 'c\u0000'] })).toBe(true);
  expect(holdsNul({ body: { $case: 'hello', value: { devices: [{ model: '\u0000' }] } } })).toBe(true);
  expect(holdsNul({ site: 'a', deviceIds: ['b'], powerTargetW: 0, wait: false })).toBe(false);
});

it('replaces every NUL in a message, and leaves a message without one as it is', () => {
  const r = { commandId: 'c', message: 'driver said a\u0000b', devices: [{ deviceId: 'd', state: '\u0000' }], appliedAtMs: 1 };
  expect(withoutNul(r)).toEqual({ commandId: 'c', message: 'driver said a\uFFFDb', devices: [{ deviceId: 'd', state: '\uFFFD' }], appliedAtMs: 1 });
  const clean = { commandId: 'c', devices: [] };
  expect(withoutNul(clean)).toBe(clean);
});

let server: GrpcServer;
beforeAll(async () => {
  const impl = {
    getStatus: (call: { request: GetStatusRequest }, cb: (e: unknown, r?: unknown) => void) =>
      isMalformed(call.request) ? cb(grpcError(status.INVALID_ARGUMENT, 'malformed_message', malformedReason(call.request))) : cb(null, { sites: [], sitesOnline: 0, devicesOnline: 0, hashrateThs: 0, powerW: 0, gpuUtilizationPct: 0 }),
  };
  server = await startGrpcServer({ host: '127.0.0.1', port: 0, services: [{ service: FleetService, impl: impl as never }] });
});
afterAll(() => server.close());

it('hands the handler the marker, over the wire', async () => {
  const c = new Client(`127.0.0.1:${server.port}`, credentials.createInsecure());
  const call = (bytes: Buffer) => new Promise<ServiceError | null>((r) => c.makeUnaryRequest('/hcp.v1.Fleet/GetStatus', (b: Buffer) => b, (b: Buffer) => b, bytes, new Metadata(), (e) => r(e)));
  expect(await call(Buffer.alloc(0))).toBeNull();
  const e = await call(Buffer.from([0x01]));
  expect(e?.code).toBe(status.INVALID_ARGUMENT);
  expect(e?.metadata.get('hcp-reason')).toEqual(['malformed_message']);
  c.close();
});
