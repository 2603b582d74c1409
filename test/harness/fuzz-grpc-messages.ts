// Random gRPC messages over the generated types (proto/gen/hcp/v1): hcp.v1.Fleet requests and
// metadata, and hcp.v1.AgentGateway/Connect streams (a Hello, or not, then any sequence of
// acks, results, heartbeats and trip reports). Strings from the tricky ones and the ids that
// exist; repeated fields empty, a few, or past the limits; numbers at every boundary.
import fc from 'fast-check';
import { CommandOutcome, type CommandResult, type DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import type { AllocateRequest, CurtailRequest, ReleaseRequest, SetMiningRequest, WatchCommandsRequest } from '../../proto/gen/hcp/v1/fleet.js';
import { DeviceKind, type AgentMessage, type Device, type Hello } from '../../proto/gen/hcp/v1/gateway.js';
import { someId, trickyNumber, trickyString } from './fuzz-arbitraries.js';
import { FUZZ_ASICS, FUZZ_GPUS, FUZZ_SITE } from './fuzz-target.js';

/** the site whose credential the gateway fuzzer uses (never fuzz-1's or the steady site's) */
export const GW_SITE = 'fuzz-gw';

const bool = fc.boolean();
/** uint32 fields: what the wire can carry, 0 (unset) and the boundaries */
const uint32 = fc.oneof(fc.constantFrom(0, 1, 2, 300, 86_400, 86_401, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1), fc.nat());
/** int64 fields: the wire's whole range, within and past what a JS number holds exactly (the decoder refuses past 2^53) */
const int64 = fc.oneof(fc.constantFrom(0, 1, -1, Date.now(), 2 ** 31, 4e9, 2 ** 53 - 1, 2 ** 53 + 2, 9e18, -9e18), fc.integer(), fc.maxSafeInteger());
/** uint64 fields: the same, and up to 2^64 */
const uint64 = fc.oneof(fc.constantFrom(0, 1, 2 ** 53 - 1, 2 ** 53 + 2, 9e18, 1.8e19), fc.nat(), fc.maxSafeNat());
const double = trickyNumber;

/** repeated string fields: none, a few, or past the 20,000-device cap */
const HUGE_IDS = Array.from({ length: 20_001 }, (_, i) => `asic-x-${i}`);
const ids = (known: string[]) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.array(fc.oneof(fc.constantFrom(...known), someId), { maxLength: 5 }) },
    { weight: 1, arbitrary: fc.constant(HUGE_IDS) },
    { weight: 1, arbitrary: fc.array(fc.constantFrom(...known), { minLength: 2, maxLength: 3 }).map((xs) => [...xs, ...xs]) },
  );

const siteName = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(FUZZ_SITE, 'steady-1', 'texas-1', '', 'nope-1') }, { weight: 2, arbitrary: trickyString });

export type FleetCall =
  | { method: 'getStatus'; request: Record<string, never> }
  | { method: 'setMining'; request: SetMiningRequest }
  | { method: 'curtail'; request: CurtailRequest }
  | { method: 'allocate'; request: AllocateRequest }
  | { method: 'release'; request: ReleaseRequest };

/**
 * A wait=true call waits for its commands up to their deadline (at most 60 s): the fuzzer keeps
 * its deadline to a second or two, so a command for a site with no agent does not hold the run.
 */
const shortWait = <T extends { wait: boolean; deadlineS: number }>(r: T): T => (r.wait && (r.deadlineS === 0 || r.deadlineS <= 86_400) ? { ...r, deadlineS: 1 + (r.deadlineS % 2) } : r);

export const fleetCall: fc.Arbitrary<FleetCall> = fc.oneof(
  fc.constant({ method: 'getStatus' as const, request: {} }),
  fc
    .record({ site: siteName, enabled: bool, deviceIds: ids(FUZZ_ASICS), powerTargetW: double, actor: trickyString, wait: bool, deadlineS: uint32, reason: trickyString, durationS: uint32 })
    .map((request) => ({ method: 'setMining' as const, request: shortWait(request) })),
  fc
    .record({ sites: fc.oneof(fc.array(siteName, { maxLength: 3 }), fc.constant(HUGE_IDS)), all: bool, reason: trickyString, actor: trickyString, wait: bool, deadlineS: uint32, durationS: uint32 })
    .map((request) => ({ method: 'curtail' as const, request: shortWait(request) })),
  // Allocate and Release have no deadline of their own (120 s): they do not wait here
  fc.record({ workloadId: someId, deviceIds: ids(FUZZ_GPUS), actor: trickyString, wait: fc.constant(false) }).map((request) => ({ method: 'allocate' as const, request })),
  fc.record({ workloadId: someId, actor: trickyString, wait: fc.constant(false) }).map((request) => ({ method: 'release' as const, request })),
);

export const watchRequest: fc.Arbitrary<WatchCommandsRequest> = fc.record({ site: siteName });

// ---------------------------------------------------------------------------------------------
// Metadata

export type AuthChoice = 'admin' | 'operator' | 'customer' | 'viewer' | 'agent' | 'feed' | 'gw' | 'gw-second' | 'none' | 'unknown' | 'malformed';

/** metadata beside the key: request ids, odd keys, binary values */
export const extraMetadata: fc.Arbitrary<Array<[string, string | Buffer]>> = fc.array(
  fc.oneof(
    fc.tuple(fc.constant('x-request-id'), trickyString),
    fc.tuple(fc.constantFrom('x-hcp-actor', 'hcp-reason', 'grpc-timeout-x', 'user-agent-x', 'content-type-x'), trickyString),
    fc.tuple(fc.stringMatching(/^[a-z0-9_.-]{1,20}$/), trickyString),
    fc.tuple(fc.constantFrom('trace-bin', 'authorization-bin'), fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b))),
  ),
  { maxLength: 4 },
);

export const authChoice = (roles: AuthChoice[]) => fc.constantFrom(...roles);

// ---------------------------------------------------------------------------------------------
// AgentGateway/Connect

const deviceKind = fc.oneof({ weight: 12, arbitrary: fc.constantFrom(DeviceKind.DEVICE_KIND_GPU, DeviceKind.DEVICE_KIND_ASIC) }, { weight: 1, arbitrary: fc.constantFrom(DeviceKind.DEVICE_KIND_UNSPECIFIED, 7 as DeviceKind, -1 as DeviceKind) });

/** device ids: the fuzz site's own, other sites' (owned elsewhere), and odd ones */
const deviceId = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 6 }).map((n) => `gpu-${GW_SITE}-000${n}`) },
  { weight: 1, arbitrary: fc.constantFrom(...FUZZ_GPUS, ...FUZZ_ASICS, 'gpu-steady-1-0001', 'asic-steady-1-00001') },
  { weight: 1, arbitrary: trickyString },
);
/** a device's text fields: right, or now and then anything */
const text = (ok: fc.Arbitrary<string>) => fc.oneof({ weight: 12, arbitrary: ok }, { weight: 1, arbitrary: trickyString });

const device: fc.Arbitrary<Device> = fc.record({
  id: deviceId,
  kind: deviceKind,
  model: text(fc.constantFrom('NVIDIA H100 80GB HBM3', 'Antminer S21 XP')),
  endpoint: text(fc.constantFrom('', '127.0.0.1:4028')),
  serial: text(fc.constant('')),
  ratedPowerW: double,
  ratedHashrateThs: double,
  memoryTotalMib: double,
  driver: text(fc.constant('fuzz')),
});

const HUGE_DEVICES: Device[] = Array.from({ length: 20_001 }, (_, i) => ({
  id: `asic-${GW_SITE}-${String(i).padStart(5, '0')}`, kind: DeviceKind.DEVICE_KIND_ASIC, model: 'Antminer S21 XP', endpoint: '', serial: '', ratedPowerW: 3645, ratedHashrateThs: 270, memoryTotalMib: 0, driver: 'fuzz',
}));

export const hello: fc.Arbitrary<Hello> = fc.record({
  siteId: fc.oneof({ weight: 12, arbitrary: fc.constant(GW_SITE) }, { weight: 1, arbitrary: fc.constantFrom(FUZZ_SITE, 'steady-1', 'texas-1', 'atlantis-1') }, { weight: 1, arbitrary: trickyString }),
  agentVersion: text(fc.constant('fuzz')),
  agentSession: text(fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/)),
  devices: fc.oneof(
    { weight: 8, arbitrary: fc.uniqueArray(device, { maxLength: 4, selector: (d) => d.id }) },
    { weight: 1, arbitrary: fc.constant(HUGE_DEVICES) },
    { weight: 1, arbitrary: device.map((d) => [d, d]) },
  ),
  hostname: text(fc.constant('fuzz-host')),
});

const deviceState: fc.Arbitrary<DeviceState> = fc.record({ deviceId, state: trickyString, workloadId: trickyString, powerTargetW: double });

const commandId = fc.oneof(fc.uuid(), trickyString, fc.constantFrom('cmd_missing', ''));

const result: fc.Arbitrary<CommandResult> = fc.record({
  commandId,
  outcome: fc.constantFrom(CommandOutcome.COMMAND_OUTCOME_APPLIED, CommandOutcome.COMMAND_OUTCOME_FAILED, CommandOutcome.COMMAND_OUTCOME_UNSPECIFIED, 9 as CommandOutcome),
  reasonCode: fc.oneof(fc.constantFrom('ok', 'driver_error', 'expired'), trickyString),
  message: fc.oneof(trickyString, fc.constant('a\u0000b')),
  devices: fc.oneof({ weight: 6, arbitrary: fc.array(deviceState, { maxLength: 4 }) }, { weight: 1, arbitrary: fc.constant(HUGE_IDS.map((id) => ({ deviceId: id, state: 'sleeping', workloadId: '', powerTargetW: 0 }))) }),
  appliedAtMs: int64,
});

/** a message after the Hello (or instead of it) */
export const agentMessage: fc.Arbitrary<AgentMessage> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ seq: uint64, tsMs: int64, devicesReporting: uint32, devicesTotal: uint32 }).map((value) => ({ body: { $case: 'heartbeat' as const, value } })) },
  { weight: 2, arbitrary: commandId.map((commandId) => ({ body: { $case: 'commandAck' as const, value: { commandId } } })) },
  { weight: 2, arbitrary: result.map((value) => ({ body: { $case: 'commandResult' as const, value } })) },
  {
    weight: 1,
    arbitrary: fc
      .record({ region: fc.oneof(fc.constantFrom('ercot', 'ieso', ''), trickyString), hz: double, signalTsMs: int64, appliedAtMs: int64, deviceIds: ids([`gpu-${GW_SITE}-0001`]) })
      .map((value) => ({ body: { $case: 'gridTripFired' as const, value } })),
  },
  { weight: 1, arbitrary: hello.map((value) => ({ body: { $case: 'hello' as const, value } })) },
  { weight: 1, arbitrary: fc.constant({ body: undefined }) },
);

export interface ConnectCase {
  auth: AuthChoice;
  /** as an agent does: the rest only once the HelloAck (or the refusal) is in; else all at once, then the end */
  waitAck: boolean;
  extra: Array<[string, string | Buffer]>;
  /** a Hello first, or whatever comes */
  first: AgentMessage;
  rest: AgentMessage[];
}

export const connectCase: fc.Arbitrary<ConnectCase> = fc.record({
  waitAck: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  auth: fc.oneof({ weight: 8, arbitrary: fc.constant<AuthChoice>('gw') }, { weight: 3, arbitrary: authChoice(['gw-second', 'operator', 'admin', 'viewer', 'feed', 'none', 'unknown', 'malformed']) }),
  extra: extraMetadata,
  first: fc.oneof({ weight: 6, arbitrary: hello.map((value) => ({ body: { $case: 'hello' as const, value } })) }, { weight: 1, arbitrary: agentMessage }),
  rest: fc.array(agentMessage, { maxLength: 8 }),
});

/** raw frames for a method path, as a client with its own serializer would send them */
export const garbage: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1000, maxLength: 5000 }) },
    // a valid field tag then a length past the end, or a wire type that does not exist
    { weight: 1, arbitrary: fc.constantFrom(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0x0f]), Uint8Array.from([0x0f]), Uint8Array.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), Uint8Array.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])) },
  )
  .map((b) => Buffer.from(b));

export const METHOD_PATHS = [
  '/hcp.v1.Fleet/GetStatus', '/hcp.v1.Fleet/SetMining', '/hcp.v1.Fleet/Curtail', '/hcp.v1.Fleet/Allocate', '/hcp.v1.Fleet/Release',
] as const;
export const UNKNOWN_PATHS = ['/hcp.v1.Fleet/Nope', '/hcp.v1.Nope/GetStatus', '/x', '/hcp.v1.fleet/getstatus'] as const;
