// GET /api/v1/devices and /api/v1/sites a page at a time: the real routes on a real registry
// (app.request, in process).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db } from '../control-plane/db/client.js';
import type { Api } from '../control-plane/http/deps.js';
import { Registry, type DeviceState } from '../control-plane/registry/registry.js';
import { testHttpApp } from './harness/http-app.js';
import { bearer } from './harness/auth.js';
import { describePg } from './harness/pg.js';

type Page = { devices: Array<{ id: string; site: string; kind: string }>; count: number; next_cursor: string | null };
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const SITES = ['texas-1', 'texas-2', 'canada-1'];

function addDevice(registry: Registry, siteId: string, kind: 'gpu' | 'asic', n: number): void {
  const id = kind === 'gpu' ? `gpu-${siteId}-${String(n).padStart(4, '0')}` : `asic-${siteId}-${String(n).padStart(5, '0')}`;
  registry.addDevice({
    id, siteId, kind, model: kind, driver: 'test', endpoint: null, serial: null, ratedPowerW: 1000,
    ratedHashrateThs: kind === 'asic' ? 270 : null, memoryTotalMib: kind === 'gpu' ? 81559 : null, lastSeenMs: null,
  } satisfies Omit<DeviceState, 'online' | 'gpu' | 'asic'>);
}

describePg('fleet lists, paged', (pg) => {
  let db: Db;
  let registry: Registry;
  let app: Api;
  const get = async (path: string) => {
    const r = await app.request(path, { headers: bearer() });
    return { status: r.status, body: (await r.json()) as Json };
  };
  /** every page of a list, following next_cursor */
  const all = async (path: string) => {
    const pages: Page[] = [];
    let cursor: string | null = null;
    do {
      const sep = path.includes('?') ? '&' : '?';
      const r = await get(cursor === null ? path : `${path}${sep}cursor=${encodeURIComponent(cursor)}`);
      expect(r.status).toBe(200);
      pages.push(r.body as Page);
      cursor = (r.body as Page).next_cursor;
    } while (cursor !== null && pages.length < 100);
    return pages;
  };

  beforeAll(async () => {
    db = await createDb({ url: pg.url, dataDir: ':memory:' });
    registry = new Registry({ staleAfterMs: 60_000 });
    for (const s of SITES) registry.addSite({ id: s, name: s, region: 'ercot', powerCapacityKw: 1000 });
    // 2,430 devices: more than one default page
    for (const s of SITES) {
      for (let i = 1; i <= 10; i++) addDevice(registry, s, 'gpu', i);
      for (let i = 1; i <= 800; i++) addDevice(registry, s, 'asic', i);
    }
    app = testHttpApp({ registry, db });
  });
  afterAll(async () => {
    await db?.close();
  });

  it('answers the first 1000 devices by default, the total in count, and a cursor to the rest', async () => {
    const pages = await all('/api/v1/devices');
    expect(pages.map((p) => p.devices.length)).toEqual([1000, 1000, 430]);
    expect(pages.every((p) => p.count === 2430)).toBe(true);
    expect(pages.at(-1)!.next_cursor).toBeNull();
    const ids = pages.flatMap((p) => p.devices.map((d) => d.id));
    expect(new Set(ids).size).toBe(2430);
    expect(ids).toEqual([...ids].sort()); // id order, across pages
    expect(new Set(ids)).toEqual(new Set(registry.devices().map((d) => d.id)));
  });

  it('pages within filters, and a list that fits one page is answered whole, as before', async () => {
    const pages = await all('/api/v1/devices?site=texas-2&kind=gpu&limit=3');
    expect(pages.map((p) => p.devices.length)).toEqual([3, 3, 3, 1]);
    expect(pages.flatMap((p) => p.devices.map((d) => d.id))).toEqual(registry.devices({ site: 'texas-2', kind: 'gpu' }).map((d) => d.id).sort());
    expect(pages.every((p) => p.count === 10 && p.devices.every((d) => d.site === 'texas-2' && d.kind === 'gpu'))).toBe(true);

    const one = (await get('/api/v1/devices?site=texas-1&kind=asic')).body as Page;
    expect(one.devices).toHaveLength(800);
    expect(one.count).toBe(800);
    expect(one.next_cursor).toBeNull();
  });

  it('neither repeats nor skips a device when devices are added between pages', async () => {
    const first = (await get('/api/v1/devices?site=canada-1&kind=gpu&limit=5')).body as Page;
    expect(first.devices.map((d) => d.id).at(-1)).toBe('gpu-canada-1-0005');
    addDevice(registry, 'canada-1', 'gpu', 0); // before the cursor: not on later pages
    addDevice(registry, 'canada-1', 'gpu', 11); // after it: on the next page
    const next = (await get(`/api/v1/devices?site=canada-1&kind=gpu&limit=10&cursor=${first.next_cursor}`)).body as Page;
    expect(next.devices.map((d) => d.id)).toEqual([6, 7, 8, 9, 10, 11].map((n) => `gpu-canada-1-${String(n).padStart(4, '0')}`));
    expect(next.count).toBe(12);
    expect(next.next_cursor).toBeNull();
  });

  it('pages the sites', async () => {
    const r = await get('/api/v1/sites?limit=2');
    expect(r.body.sites.map((s: Json) => s.id)).toEqual(['canada-1', 'texas-1']);
    expect(r.body.count).toBe(3);
    const rest = await get(`/api/v1/sites?limit=2&cursor=${r.body.next_cursor}`);
    expect(rest.body.sites.map((s: Json) => s.id)).toEqual(['texas-2']);
    expect(rest.body.next_cursor).toBeNull();
    const whole = await get('/api/v1/sites');
    expect(whole.body.sites).toHaveLength(3);
    expect(whole.body.next_cursor).toBeNull();
  });

  it('refuses a bad cursor or limit with 400 naming it', async () => {
    for (const cursor of ['not-a-cursor!', 'Zm9vIGJhcg', '%20', 'Zm9v=']) {
      const r = await get(`/api/v1/devices?cursor=${cursor}`);
      expect(r.status, cursor).toBe(400);
      expect(r.body.error.fields.map((f: Json) => f.field), cursor).toEqual(['cursor']);
    }
    expect((await get('/api/v1/sites?cursor=%3F')).body.error.fields[0].field).toBe('cursor');
    for (const limit of ['0', '10001', 'x']) {
      const r = await get(`/api/v1/devices?limit=${limit}`);
      expect(r.status, limit).toBe(400);
      expect(r.body.error.fields[0].field).toBe('limit');
    }
    expect((await get('/api/v1/devices?limit=10000')).body.devices).toHaveLength(2432);
    expect((await get('/api/v1/devices?site=nowhere-1')).status).toBe(404);
  });
});
