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
      'agent_session is empty',
      'device id a appears twice',
      'device id "has space" is invalid',
      'device b has no kind',
    ]);
  });
});
