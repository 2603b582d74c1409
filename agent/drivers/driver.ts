// The agent reads and (later) commands devices only through this interface, so a driver for
// real hardware is a drop-in for the simulated one (docs/architecture.md "Devices behind drivers").
import type { Device } from '../../proto/gen/hcp/v1/gateway.js';
import type { DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import type { AsicSample, GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';

export interface DriverReadError {
  deviceId: string;
  /** stable code, e.g. 'timeout', 'refused', 'bad_reply' */
  code: string;
  message: string;
}

export interface DriverReading {
  gpus: GpuSample[];
  asics: AsicSample[];
  errors: DriverReadError[];
}

export interface DeviceDriver {
  /** 'sim', 'cgminer', … — reported per device in the hello inventory */
  readonly name: string;
  /** the devices this driver owns; stable for the driver's lifetime */
  inventory(): Device[];
  /**
   * Reads every device once; a device that cannot be read is an entry in `errors`, never a throw.
   * The samples are the caller's until the driver's next read(), which may write new readings
   * into the same objects (the sim driver does: sim-hardware/agent-driver.ts); a caller that
   * keeps one longer copies it.
   */
  read(nowMs: number): Promise<DriverReading>;
  /** idempotent */
  close(): Promise<void>;
}

/** One change to one device, routed by the agent to the driver that owns the device. */
export type DeviceOp =
  | { kind: 'assign'; deviceId: string; workloadId: string }
  | { kind: 'release'; deviceId: string }
  | {
      kind: 'mining';
      deviceId: string;
      enabled: boolean;
      /** null = the model's stock power */
      powerTargetW: number | null;
      /** a grid trip: act on what is known (see `prepare`) rather than read first */
      urgent?: boolean;
    };

export interface DeviceOpResult {
  deviceId: string;
  ok: boolean;
  /** 'ok', or a stable failure code: 'unknown_device', 'device_busy', 'not_allocated', 'unsupported', 'driver_error', 'invalid_command', 'superseded' (an urgent op won) */
  code: string;
  message: string;
  /** the device's state after the op (or as it stands, when the op failed) */
  state: DeviceState;
}

export interface CommandableDriver extends DeviceDriver {
  /**
   * Applies ops to devices this driver owns, each independently: one failing device never stops
   * the others. Idempotent per device: assigning a GPU the workload it already runs, or sleeping
   * a sleeping miner, succeeds and changes nothing. Never throws.
   */
  apply(ops: DeviceOp[]): Promise<DeviceOpResult[]>;
  /**
   * Makes urgent ops on these devices fast (the cgminer driver reads and keeps their confs), and
   * keeps them so. Replaces the earlier set. Never throws; says how many devices are ready.
   */
  prepare?(deviceIds: string[]): Promise<{ ready: number; failed: number }>;
}
