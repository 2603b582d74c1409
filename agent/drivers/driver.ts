// The agent reads and (later) commands devices only through this interface, so a driver for
// real hardware is a drop-in for the simulated one (ARCHITECTURE.md "Devices behind drivers").
import type { Device } from '../../proto/gen/hcp/v1/gateway.js';
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
  /** reads every device once; a device that cannot be read is an entry in `errors`, never a throw */
  read(nowMs: number): Promise<DriverReading>;
  /** idempotent */
  close(): Promise<void>;
}
