import { describe, expect, it } from 'vitest';
import { DeviceKind, type Device } from '../../proto/gen/hcp/v1/gateway.js';
import { checkHello } from './agent-gateway.js';

const dev = (id: string, kind = DeviceKind.DEVICE_KIND_GPU): Device => ({ id, kind, model: '', endpoint: '', serial: '', ratedPowerW: 0, ratedHashrateThs: 0, memoryTotalMib: 0, driver: '' });

describe('checkHello', () => {
  it('accepts a well-formed hello', () => {
    expect(checkHello({ siteId: 'texas-1', agentVersion: '1', agentSession: 's', hostname: '', devices: [dev('gpu-texas-1-0001')] })).toEqual([]);
  });

  it('names every problem', () => {
    const p = checkHello({
      siteId: 'Texas 1', agentVersion: '', agentSession: '', hostname: '',
      devices: [dev('a'), dev('a'), dev('has space'), dev('b', DeviceKind.DEVICE_KIND_UNSPECIFIED)],
    });
    expect(p).toEqual([
      'site_id "Texas 1" is not a valid site id',
      'agent_session must be 1-64 of A-Z a-z 0-9 . _ : -',
      'device id a appears twice',
      'device id "has space" is invalid',
      'device b has no kind',
    ]);
  });

  it('refuses NUL bytes and over-long strings, and more devices than the cap', () => {
    expect(checkHello({ siteId: 'texas-1', agentVersion: 'v\u0000', agentSession: 's', hostname: '', devices: [] })).toEqual(['agent_version or hostname is too long or holds NUL']);
    expect(checkHello({ siteId: 'texas-1', agentVersion: '1', agentSession: 's'.repeat(65), hostname: '', devices: [] })).toHaveLength(1);
    expect(checkHello({ siteId: 'texas-1', agentVersion: '1', agentSession: 's', hostname: '', devices: [dev('gpu-1'), dev('gpu-2')] }, 1)).toEqual(['more than 1 devices (HCP_MAX_DEVICES_PER_SITE)']);
  });

  it('refuses a device whose model, endpoint, serial or driver holds NUL or is over-long (they are stored as text)', () => {
    const h = (d: Partial<Device>) => checkHello({ siteId: 'texas-1', agentVersion: '1', agentSession: 's', hostname: '', devices: [{ ...dev('gpu-texas-1-0001'), ...d }] });
    for (const d of [{ model: 'H100\u0000' }, { endpoint: '\u0000' }, { serial: 'x'.repeat(256) }, { driver: 'sim\u0000' }]) {
      expect(h(d), JSON.stringify(d)).toEqual(['device "gpu-texas-1-0001": model, endpoint, serial or driver is too long or holds NUL']);
    }
    expect(h({ model: 'NVIDIA H100 80GB HBM3', endpoint: '10.0.0.1:4028', serial: 'GPU-1', driver: 'sim' })).toEqual([]);
  });
});
