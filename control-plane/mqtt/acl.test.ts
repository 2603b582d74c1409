import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Principal, Role } from '../auth/roles.js';
import {
  ANONYMOUS, filterWithin, mayConnect, mayReceive, mayUseClientId, ownerOf, publishVerdict, SERVICE, subscribeVerdict, topicMatches, type Identity,
} from './acl.js';

const key = (role: Role, name: string, siteId: string | null = null): Identity => ({
  kind: 'key',
  principal: { keyId: `key_${name}`, name, role, customerId: role === 'customer' ? 'cust-1' : null, siteId } satisfies Principal,
});
const texas1 = key('agent', 'texas-1-agent', 'texas-1');
const texas2 = key('agent', 'texas-2-agent', 'texas-2');
const feed = key('feed', 'feeds');
const viewer = key('viewer', 'grafana');
const admin = key('admin', 'root');
const operator = key('operator', 'ops');
const customer = key('customer', 'acme');
const regions: Record<string, string> = { 'texas-1': 'ercot', 'texas-2': 'ercot', 'canada-1': 'ieso' };
const regionOf = (s: string) => regions[s];

describe('publish ACL', () => {
  it('lets only the site agent publish its own telemetry and status', () => {
    expect(publishVerdict(texas1, 'hcp/v1/sites/texas-1/telemetry')).toBe('allow');
    expect(publishVerdict(texas1, 'hcp/v1/sites/texas-1/status')).toBe('allow');
    expect(publishVerdict(texas1, 'hcp/v1/sites/texas-2/telemetry')).toBe('forbidden');
    for (const who of [ANONYMOUS, SERVICE, feed, viewer, admin, operator, texas2]) {
      expect(publishVerdict(who, 'hcp/v1/sites/texas-1/telemetry')).toBe('forbidden');
      expect(publishVerdict(who, 'hcp/v1/sites/texas-1/status')).toBe('forbidden');
    }
  });

  it('lets only a feed or an anonymous client publish market and grid readings', () => {
    for (const t of ['hcp/v1/market/btc_usd', 'hcp/v1/market/power/texas-1', 'hcp/v1/market/gpu_spot', 'hcp/v1/grid/ercot/frequency']) {
      expect(publishVerdict(feed, t)).toBe('allow');
      expect(publishVerdict(ANONYMOUS, t)).toBe('allow');
      for (const who of [texas1, viewer, admin, operator, SERVICE]) expect(publishVerdict(who, t)).toBe('forbidden');
    }
  });

  it('forbids every $ topic and tells unknown topics apart', () => {
    for (const who of [feed, texas1, ANONYMOUS, SERVICE, admin]) {
      expect(publishVerdict(who, '$SYS/broker/x')).toBe('forbidden');
      expect(publishVerdict(who, '$hcp/forbidden/hcp/v1/grid/ercot/frequency')).toBe('forbidden');
      expect(publishVerdict(who, 'hcp/v1/sites/texas-1/commands')).toBe('unknown_topic');
      expect(publishVerdict(who, 'random/topic')).toBe('unknown_topic');
    }
  });
});

describe('subscribe ACL', () => {
  it('gives an agent its own site and its region grid topic only', () => {
    expect(subscribeVerdict(texas1, 'hcp/v1/sites/texas-1/telemetry', regionOf)).toBe('allow');
    expect(subscribeVerdict(texas1, 'hcp/v1/sites/texas-1/status', regionOf)).toBe('allow');
    expect(subscribeVerdict(texas1, 'hcp/v1/grid/ercot/frequency', regionOf)).toBe('allow');
    for (const f of ['hcp/v1/sites/texas-2/telemetry', 'hcp/v1/sites/+/telemetry', 'hcp/v1/sites/texas-1/#', 'hcp/v1/grid/ieso/frequency', 'hcp/v1/grid/+/frequency', '#', '+/v1/sites/texas-1/telemetry', 'hcp/v1/market/#']) {
      expect(subscribeVerdict(texas1, f, regionOf), f).toBe('forbidden');
    }
    // a site without a known region has no grid topic
    expect(subscribeVerdict(key('agent', 'x', 'nowhere-1'), 'hcp/v1/grid/ercot/frequency', regionOf)).toBe('forbidden');
  });

  it('lets readers read hcp/v1, feeds the feeds, customers nothing', () => {
    for (const who of [admin, operator, viewer]) {
      for (const f of ['hcp/v1/#', 'hcp/v1/sites/+/telemetry', 'hcp/v1/sites/texas-2/status', 'hcp/v1/market/#', 'hcp/v1/grid/+/frequency']) expect(subscribeVerdict(who, f, regionOf)).toBe('allow');
      expect(subscribeVerdict(who, '#', regionOf)).toBe('forbidden');
    }
    expect(subscribeVerdict(feed, 'hcp/v1/market/#', regionOf)).toBe('allow');
    expect(subscribeVerdict(feed, 'hcp/v1/grid/ercot/frequency', regionOf)).toBe('allow');
    expect(subscribeVerdict(feed, 'hcp/v1/sites/+/telemetry', regionOf)).toBe('forbidden');
    expect(subscribeVerdict(customer, 'hcp/v1/market/#', regionOf)).toBe('forbidden');
    expect(mayConnect(customer)).toBe(false);
    expect(mayConnect(viewer) && mayConnect(ANONYMOUS) && mayConnect(SERVICE)).toBe(true);
  });

  it('gives anonymous clients telemetry, status, market and grid, not the whole tree', () => {
    for (const f of ['hcp/v1/sites/+/telemetry', 'hcp/v1/sites/texas-1/status', 'hcp/v1/market/#', 'hcp/v1/market/btc_usd', 'hcp/v1/grid/+/frequency']) expect(subscribeVerdict(ANONYMOUS, f, regionOf)).toBe('allow');
    for (const f of ['hcp/v1/#', '#', 'hcp/v1/sites/#', 'hcp/v1/sites/texas-1/+']) expect(subscribeVerdict(ANONYMOUS, f, regionOf)).toBe('forbidden');
  });

  it('refuses $ filters to everyone, the service included', () => {
    for (const who of [SERVICE, admin, ANONYMOUS, texas1]) {
      expect(subscribeVerdict(who, '$hcp/forbidden/#', regionOf)).toBe('reserved');
      expect(subscribeVerdict(who, '$SYS/#', regionOf)).toBe('reserved');
    }
  });

  it('checks again at delivery', () => {
    expect(mayReceive(texas1, 'hcp/v1/sites/texas-2/telemetry', regionOf)).toBe(false);
    expect(mayReceive(texas1, 'hcp/v1/grid/ercot/frequency', regionOf)).toBe(true);
    expect(mayReceive(SERVICE, '$hcp/forbidden/hcp/v1/grid/ercot/frequency', regionOf)).toBe(false);
    expect(mayReceive(viewer, 'hcp/v1/sites/texas-2/telemetry', regionOf)).toBe(true);
  });
});

describe('client ids', () => {
  it('binds hcp-agent-<site> to that site agent', () => {
    expect(mayUseClientId(texas2, 'hcp-agent-texas-2')).toBe(true);
    expect(mayUseClientId(texas2, 'hcp-agent-texas-2-0a1b2c3d')).toBe(true);
    for (const who of [texas1, viewer, feed, ANONYMOUS, SERVICE]) expect(mayUseClientId(who, 'hcp-agent-texas-2-x')).toBe(false);
    // a prefix of a site id is not the site
    expect(mayUseClientId(texas2, 'hcp-agent-texas-20')).toBe(false);
  });

  it('keeps hcp-ingest- for the in-process service and hcp-key-<name> for that key', () => {
    expect(mayUseClientId(SERVICE, 'hcp-ingest-50051')).toBe(true);
    for (const who of [admin, texas1, ANONYMOUS]) expect(mayUseClientId(who, 'hcp-ingest-1')).toBe(false);
    expect(mayUseClientId(feed, 'hcp-key-feeds')).toBe(true);
    expect(mayUseClientId(feed, 'hcp-key-feeds-9f2c')).toBe(true);
    expect(mayUseClientId(feed, 'hcp-key-feedsx')).toBe(false);
    expect(mayUseClientId(viewer, 'hcp-key-feeds-9f2c')).toBe(false);
    expect(mayUseClientId(ANONYMOUS, 'hcp-key-feeds')).toBe(false);
  });

  it('refuses any other hcp- id to everyone and leaves the rest free', () => {
    for (const who of [SERVICE, admin, feed, texas1, ANONYMOUS]) {
      expect(mayUseClientId(who, 'hcp-feeds-123')).toBe(false);
      expect(mayUseClientId(who, 'hcp-')).toBe(false);
      expect(mayUseClientId(who, 'grafana-1')).toBe(true);
      expect(mayUseClientId(who, 'HCP-agent-texas-1')).toBe(true);
    }
  });

  it('names session owners by key, not by name', () => {
    expect(ownerOf(texas1)).toBe('key:key_texas-1-agent');
    expect(ownerOf(ANONYMOUS)).not.toBe(ownerOf(SERVICE));
  });
});

describe('topic filters', () => {
  it('matches as MQTT 3.1.1 §4.7.1 says', () => {
    expect(topicMatches('a/#', 'a')).toBe(true);
    expect(topicMatches('a/+', 'a')).toBe(false);
    expect(topicMatches('a/+/c', 'a/b/c')).toBe(true);
    expect(topicMatches('a/+/c', 'a/b/c/d')).toBe(false);
    expect(topicMatches('+/+', '/x')).toBe(true);
  });

  it('filterWithin(f, o) holds only when every topic f matches, o matches too', () => {
    const level = fc.constantFrom('a', 'b', '', '+');
    const filter = fc.tuple(fc.array(level, { minLength: 0, maxLength: 3 }), fc.boolean()).map(([ls, hash]) => [...ls, ...(hash || ls.length === 0 ? ['#'] : [])].join('/'));
    const topic = fc.array(fc.constantFrom('a', 'b', '', 'c'), { minLength: 1, maxLength: 5 }).map((ls) => ls.join('/'));
    fc.assert(
      fc.property(filter, filter, fc.array(topic, { maxLength: 30 }), (f, o, ts) => {
        if (filterWithin(f, o)) for (const t of ts) if (topicMatches(f, t)) expect(topicMatches(o, t)).toBe(true);
      }),
      { numRuns: 2000 },
    );
    expect(filterWithin('hcp/v1/market', 'hcp/v1/market/#')).toBe(true);
    expect(filterWithin('hcp/v1/#', 'hcp/v1/market/#')).toBe(false);
    expect(filterWithin('a/#', 'a/+')).toBe(false);
    expect(filterWithin('a/+', 'a/#')).toBe(true);
  });
});
