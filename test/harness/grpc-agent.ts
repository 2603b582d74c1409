// A hand-driven agent stream for integration tests: real gRPC to the control plane, with the
// messages the test chooses.
import { credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { CommandOutcome, type Command, type DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import { AgentGatewayClient, DeviceKind, type AgentMessage, type ControlMessage, type Device } from '../../proto/gen/hcp/v1/gateway.js';

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
  /** commands received, in order */
  commands(): Command[];
  send(m: AgentMessage): void;
  ack(commandId: string): void;
  result(commandId: string, ok: boolean, reasonCode?: string, devices?: DeviceState[]): void;
  error: Promise<ServiceError>;
  heartbeat(seq: number): void;
  close(): void;
}

/**
 * answer: how the stream answers commands on its own — 'apply' acks and reports every command
 * applied (each device in the command as its result), 'ack' only acks, 'none' stays silent.
 */
export function openAgentStream(
  address: string,
  hello: { siteId: string; session: string; devices: Device[]; /** the site credential */ token: string },
  answer: 'apply' | 'ack' | 'none' = 'none',
): TestAgentStream {
  const client = new AgentGatewayClient(address, credentials.createInsecure());
  const md = new Metadata();
  if (hello.token) md.set('authorization', `Bearer ${hello.token}`);
  const stream = client.connect(md);
  const received: ControlMessage[] = [];
  const write = (m: AgentMessage) => stream.write(m);
  const ack = (commandId: string) => write({ body: { $case: 'commandAck', value: { commandId } } });
  const result = (commandId: string, ok: boolean, reasonCode = ok ? 'ok' : 'driver_error', devices: DeviceState[] = []) =>
    write({
      body: {
        $case: 'commandResult',
        value: { commandId, outcome: ok ? CommandOutcome.COMMAND_OUTCOME_APPLIED : CommandOutcome.COMMAND_OUTCOME_FAILED, reasonCode, message: '', devices, appliedAtMs: Date.now() },
      },
    });
  stream.on('data', (m: ControlMessage) => {
    received.push(m);
    if (m.body?.$case !== 'command' || answer === 'none') return;
    const c = m.body.value;
    ack(c.commandId);
    if (answer !== 'apply') return;
    const a = c.action;
    const ids = a && 'deviceIds' in a.value ? a.value.deviceIds : [];
    const state = a?.$case === 'allocate' ? 'busy' : a?.$case === 'release' ? 'idle' : a?.$case === 'setMining' && a.value.enabled ? 'ramping' : 'sleeping';
    const workloadId = a?.$case === 'allocate' ? a.value.workloadId : '';
    result(c.commandId, true, 'ok', ids.map((deviceId) => ({ deviceId, state, workloadId, powerTargetW: 0 })));
  });
  const error = new Promise<ServiceError>((resolve) => stream.on('error', (e: ServiceError) => resolve(e)));
  stream.write({ body: { $case: 'hello', value: { siteId: hello.siteId, agentVersion: 'test', agentSession: hello.session, devices: hello.devices, hostname: 'test' } } });
  return {
    received,
    commands: () => received.flatMap((m) => (m.body?.$case === 'command' ? [m.body.value] : [])),
    send: write,
    ack,
    result,
    error,
    heartbeat: (seq) => stream.write({ body: { $case: 'heartbeat', value: { seq, tsMs: Date.now(), devicesReporting: 0, devicesTotal: 0 } } }),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}
