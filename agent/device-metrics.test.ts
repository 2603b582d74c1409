import { describe, expect, it } from 'vitest';
import { DeviceKind, type Device } from '../proto/gen/hcp/v1/gateway.js';
import { MiningState } from '../proto/gen/hcp/v1/telemetry.js';
import { asic, gpu } from '../test/harness/samples.js';
import { createDeviceMetrics } from './device-metrics.js';

const device = (id: string, kind: DeviceKind, model: string, serial = ''): Device => ({
  id, kind, model, endpoint: '', serial, ratedPowerW: 0, ratedHashrateThs: 0, memoryTotalMib: 0, driver: 'sim',
});

const inventory = [
  device('gpu-t-0001', DeviceKind.DEVICE_KIND_GPU, 'NVIDIA H100 80GB HBM3', 'GPU-aaaa'),
  device('asic-t-00001', DeviceKind.DEVICE_KIND_ASIC, 'Antminer "S21" XP'),
  device('asic-t-00002', DeviceKind.DEVICE_KIND_ASIC, 'Antminer S21 XP'),
];

const lines = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`));

describe('agent device metrics', () => {
  it('renders the last tick under dcgm-exporter and cgminer-exporter names, with escaped labels', () => {
    const m = createDeviceMetrics({ inventory, hostname: 'site-host' });
    expect(m.render()).not.toMatch(/DCGM_FI_DEV/);
    const g = { ...gpu('gpu-t-0001', 1, 87.5, 612.25), energyMj: 2 ** 40 };
    const a1 = asic('asic-t-00001', 1, 270, 3645);
    const a2 = { ...asic('asic-t-00002', 1, 0, 35), miningState: MiningState.MINING_STATE_SLEEPING, fanRpm: [] };
    m.update([g], [a1, a2]);
    const text = m.render();
    expect(lines(text, 'DCGM_FI_DEV_GPU_UTIL')).toEqual([
      'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",Hostname="site-host",hcp_device="gpu-t-0001"} 87.5',
    ]);
    expect(lines(text, 'DCGM_FI_DEV_POWER_USAGE')[0]).toMatch(/ 612\.25$/);
    expect(lines(text, 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION')[0]).toMatch(/ 1099511627776$/);
    expect(lines(text, 'DCGM_FI_DEV_FB_FREE')[0]).toMatch(/ 21559$/);
    expect(lines(text, 'cgminer_hashrate_ghs')).toEqual([
      'cgminer_hashrate_ghs{miner="asic-t-00001",model="Antminer \\"S21\\" XP",window="5s"} 270000',
      'cgminer_hashrate_ghs{miner="asic-t-00001",model="Antminer \\"S21\\" XP",window="avg"} 270000',
      'cgminer_hashrate_ghs{miner="asic-t-00002",model="Antminer S21 XP",window="5s"} 0',
      'cgminer_hashrate_ghs{miner="asic-t-00002",model="Antminer S21 XP",window="avg"} 0',
    ]);
    expect(lines(text, 'cgminer_mining').map((l) => l.split(' ').at(-1))).toEqual(['1', '0']);
    expect(lines(text, 'cgminer_temperature_celsius').filter((l) => l.includes('asic-t-00001'))).toHaveLength(6);
    expect(lines(text, 'cgminer_temperature_celsius')[2]).toMatch(/board="2",sensor="pcb"} 62$/);
    expect(lines(text, 'cgminer_fan_speed_rpm').map((l) => l.match(/fan="(\d)"} (\d+)/)!.slice(1).join(':'))).toEqual(['1:4000', '2:4100', '3:4050', '4:4020']);
    expect(lines(text, 'cgminer_shares_rejected_total')[0]).toMatch(/ 1$/);
    expect(lines(text, 'hcp_agent_asics')).toEqual(['hcp_agent_asics{state="mining"} 1', 'hcp_agent_asics{state="ramping"} 0', 'hcp_agent_asics{state="sleeping"} 1', 'hcp_agent_asics{state="fault"} 0', 'hcp_agent_asics{state="unreachable"} 0']);
  });

  it('keeps copies of the readings, not the samples, and shows only the devices of the last tick', () => {
    const m = createDeviceMetrics({ inventory, hostname: 'h' });
    const a1 = asic('asic-t-00001', 1, 270, 3645);
    m.update([], [a1, asic('asic-t-00002', 1, 250, 3400)]);
    // the sampling loop's objects may change or go: what was read stays what is rendered
    a1.powerW = 1;
    a1.boardTemperaturesC.length = 0;
    const text = m.render();
    expect(lines(text, 'cgminer_power_watts').map((l) => l.split(' ').at(-1))).toEqual(['3645', '3400']);
    expect(lines(text, 'cgminer_temperature_celsius').filter((l) => l.includes('asic-t-00001') && l.includes('pcb'))).toHaveLength(3);
    // a tick that read one miner only: the other is not shown as if it had been read
    m.update([], [asic('asic-t-00002', 2, 260, 3500)]);
    expect(lines(m.render(), 'cgminer_power_watts')).toEqual(['cgminer_power_watts{miner="asic-t-00002",model="Antminer S21 XP"} 3500']);
    // a device no inventory listed is shown by its id
    m.update([gpu('gpu-x', 3, 10, 100)], []);
    expect(lines(m.render(), 'DCGM_FI_DEV_GPU_UTIL')).toEqual(['DCGM_FI_DEV_GPU_UTIL{gpu="",UUID="gpu-x",device="",modelName="",Hostname="h",hcp_device="gpu-x"} 10']);
  });
});
