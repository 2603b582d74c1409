import { describe, expect, it } from 'vitest';
import { DeviceKind, type Hello } from '../../proto/gen/hcp/v1/gateway.js';
import { Registry, UnknownSiteError } from './registry.js';

const hello = (session: string): Hello => ({
  siteId: 'texas-1', agentVersion: '1', agentSession: session, hostname: 'h',
  devices: [{ id: 'gpu-texas-1-0001', kind: DeviceKind.DEVICE_KIND_GPU, model: 'H100', endpoint: '', serial: '', ratedPowerW: 700, ratedHashrateThs: 0, memoryTotalMib: 81559, driver: 'sim' }],
});
const status = (state: 'online' | 'offline', session: string) => ({ site: 'texas-1', state, session, ts: '' });

function registry() {
  const r = new Registry({ staleAfterMs: 10_000 });
  r.addSite({ id: 'texas-1', name: 'T1', region: 'ercot', powerCapacityKw: 1 });
  return r;
}

describe('Registry', () => {
  it('brings a site online on hello and takes it offline when both channels are gone', () => {
    const r = registry();
    r.hello(hello('a'), 0);
    r.status(status('online', 'a'), 0);
    expect(r.sweep(1).map((c) => c.type)).toEqual(['site']);
    expect(r.site('texas-1')!.online).toBe(true);
    r.streamClosed('texas-1', 'a');
    r.sweep(2);
    expect(r.site('texas-1')!.online).toBe(true); // MQTT still says online
    r.status(status('offline', 'a'), 3);
    r.sweep(3);
    expect(r.site('texas-1')!.online).toBe(false);
  });

  it('ignores a late last will from an older session', () => {
    const r = registry();
    r.hello(hello('new'), 0);
    r.status(status('online', 'new'), 0);
    r.status(status('offline', 'old'), 1);
    r.streamClosed('texas-1', 'old');
    r.sweep(2);
    expect(r.site('texas-1')!.online).toBe(true);
  });

  it('takes a silent site offline after staleAfterMs, and its devices with it', () => {
    const r = registry();
    r.hello(hello('a'), 0);
    const d = r.deviceAt('texas-1', 'gpu-texas-1-0001', 'gpu')!;
    r.recordGpu(d, { deviceId: d.id, tsMs: 0 } as never, 0);
    r.sweep(5_000);
    expect(r.device(d.id)!.online).toBe(true);
    r.sweep(10_001);
    expect(r.site('texas-1')!.online).toBe(false);
    expect(r.device(d.id)!.online).toBe(false);
  });

  it('keeps heartbeats from a stale session from counting', () => {
    const r = registry();
    r.hello(hello('a'), 0);
    r.heartbeat('texas-1', 'other', 9_000);
    r.sweep(10_001);
    expect(r.site('texas-1')!.online).toBe(false);
  });

  it('refuses hello for an unknown site and matches devices only to their own site and kind', () => {
    const r = registry();
    expect(() => r.hello({ ...hello('a'), siteId: 'mars-1' }, 0)).toThrow(UnknownSiteError);
    r.hello(hello('a'), 0);
    expect(r.deviceAt('texas-1', 'gpu-texas-1-0001', 'gpu')).not.toBeNull();
    expect(r.deviceAt('texas-2', 'gpu-texas-1-0001', 'gpu')).toBeNull();
    expect(r.deviceAt('texas-1', 'gpu-texas-1-0001', 'asic')).toBeNull();
  });

  it('lists one site\'s devices, and a device that moves to another site moves with it', () => {
    const r = registry();
    r.addSite({ id: 'texas-2', name: 'T2', region: 'ercot', powerCapacityKw: 1 });
    r.hello(hello('a'), 0);
    r.hello({ ...hello('b'), siteId: 'texas-2', devices: [{ ...hello('b').devices[0]!, id: 'gpu-texas-2-0001' }] }, 0);
    expect(r.devices({ site: 'texas-1' }).map((d) => d.id)).toEqual(['gpu-texas-1-0001']);
    expect(r.devices({ site: 'texas-2', kind: 'gpu' }).map((d) => d.id)).toEqual(['gpu-texas-2-0001']);
    expect(r.devices({ site: 'texas-2', kind: 'asic' })).toEqual([]);
    // the same board re-racked at texas-2 and reported there
    r.hello({ ...hello('c'), siteId: 'texas-2', devices: [hello('c').devices[0]!, { ...hello('c').devices[0]!, id: 'gpu-texas-2-0001' }] }, 1);
    expect(r.devices({ site: 'texas-1' })).toEqual([]);
    expect(r.devices({ site: 'texas-2' }).map((d) => d.id)).toEqual(['gpu-texas-1-0001', 'gpu-texas-2-0001']);
    expect(r.devices().map((d) => d.id)).toEqual(['gpu-texas-1-0001', 'gpu-texas-2-0001']);
  });
});


describe('Registry.sweep over some sites', () => {
  it('recomputes only the sites asked for and their devices, and leaves the others to a whole sweep', () => {
    const r = new Registry({ staleAfterMs: 10_000 });
    for (const id of ['texas-1', 'texas-2']) {
      r.addSite({ id, name: id, region: 'ercot', powerCapacityKw: 1 });
      r.hello({ ...hello('a'), siteId: id, devices: [{ ...hello('a').devices[0]!, id: `gpu-${id}-0001` }] }, 0);
      r.status({ ...status('online', 'a'), site: id }, 0);
    }
    const changed = r.sweep(1, ['texas-2']);
    expect(changed.map((c) => (c.type === 'site' ? c.site.id : c.device.id))).toEqual(['texas-2']);
    expect(r.site('texas-1')!.online).toBe(false);
    expect(r.sweep(2).map((c) => (c.type === 'site' ? c.site.id : c.device.id))).toEqual(['texas-1']);
    // devices are online once sampled (no telemetry here)
    expect(r.onlineCounts()).toEqual({ sites: 2, gpu: 0, asic: 0 });
  });
});
