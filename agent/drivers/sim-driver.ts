// DeviceDriver over the in-process simulated fleet: reads the device models directly, no
// protocol in between. The fleet is owned by the caller; close() does not close it.
import { DeviceKind, type Device } from '../../proto/gen/hcp/v1/gateway.js';
import type { SimFleet } from '../../sim-hardware/fleet.js';
import type { DeviceDriver } from './driver.js';

export function createSimDriver(fleet: SimFleet): DeviceDriver {
  const inventory: Device[] = [
    ...fleet.gpus.map((g) => ({
      id: g.id,
      kind: DeviceKind.DEVICE_KIND_GPU,
      model: g.name,
      endpoint: '',
      serial: g.uuid,
      ratedPowerW: g.powerLimitW,
      ratedHashrateThs: 0,
      memoryTotalMib: g.memoryTotalMib,
      driver: 'sim',
    })),
    ...fleet.asics.map((a) => ({
      id: a.id,
      kind: DeviceKind.DEVICE_KIND_ASIC,
      model: a.model.name,
      endpoint: '',
      serial: a.minerId,
      ratedPowerW: a.model.ratedPowerW,
      ratedHashrateThs: a.model.ratedThs,
      memoryTotalMib: 0,
      driver: 'sim',
    })),
  ];
  let closed = false;
  return {
    name: 'sim',
    inventory: () => inventory,
    async read(nowMs) {
      if (closed) return { gpus: [], asics: [], errors: [] };
      fleet.step();
      return {
        gpus: fleet.gpus.map((g) => g.reading(nowMs)),
        asics: fleet.asics.map((a) => a.reading(nowMs)),
        errors: [],
      };
    },
    async close() {
      closed = true;
    },
  };
}
