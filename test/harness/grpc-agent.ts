// A hand-driven agent stream for integration tests: real gRPC to the control plane, with the
// messages the test chooses.
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { AgentGatewayClient, DeviceKind, type ControlMessage, type Device } from '../../proto/gen/hcp/v1/gateway.js';

export function device(id: string, kind: 'gpu' | 'asic', endpoint = ''): Device {
  return {
    id,
    kind: kind === 'gpu' ? DeviceKind.DEVICE_KIND_GPU : DeviceKind.DEVICE_KIND_ASIC,
    model: kind === 'gpu' ? 'NVIDIA H100 80GB HBM3' : 'Antminer S21 XP',
    endpoint,
    serial: '',
    ratedPowerW: kind === 'gpu' ? 700 : 3645,
    ratedHashrateThs: kind === 'asic' ? 270 : 0,
    memoryTotalMib: kind === 'gpu' ? 81559 : 0,
    driver: 'test',
  };
}

export interface TestAgentStream {
  received: ControlMessage[];
  error: Promise<ServiceError>;
  heartbeat(seq: number): void;
  close(): void;
}

export function openAgentStream(address: string, hello: { siteId: string; session: string; devices: Device[] }): TestAgentStream {
  const client = new AgentGatewayClient(address, credentials.createInsecure());
  const stream = client.connect();
  const received: ControlMessage[] = [];
  stream.on('data', (m: ControlMessage) => received.push(m));
  const error = new Promise<ServiceError>((resolve) => stream.on('error', (e: ServiceError) => resolve(e)));
  stream.write({ body: { $case: 'hello', value: { siteId: hello.siteId, agentVersion: 'test', agentSession: hello.session, devices: hello.devices, hostname: 'test' } } });
  return {
    received,
    error,
    heartbeat: (seq) => stream.write({ body: { $case: 'heartbeat', value: { seq, tsMs: Date.now(), devicesReporting: 0, devicesTotal: 0 } } }),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}
