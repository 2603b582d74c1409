// The console's static serving: files of the build, index.html for the app's own paths, and
// nothing for the API's paths, missing files or other methods.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, expect, it } from 'vitest';
import { consoleHandler } from './static.js';

const dir = mkdtempSync(join(tmpdir(), 'hcp-web-'));
mkdirSync(join(dir, 'assets'));
writeFileSync(join(dir, 'index.html'), '<!doctype html><div id="app"></div>');
writeFileSync(join(dir, 'assets', 'index-abc.js'), 'console.log(1)');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const app = new Hono();
const serve = consoleHandler(dir)!;
app.notFound(async (c) => (await serve(c)) ?? c.json({ error: 'not_found' }, 404));

it('serves the build, the index for the app’s paths, and leaves the API’s paths alone', async () => {
  const index = await app.request('/');
  expect(index.status).toBe(200);
  expect(await index.text()).toContain('id="app"');
  const asset = await app.request('/assets/index-abc.js');
  expect(asset.status).toBe(200);
  expect(asset.headers.get('cache-control')).toContain('immutable');
  const route = await app.request('/sites/texas-1');
  expect(route.status).toBe(200);
  expect(route.headers.get('cache-control')).toBe('no-cache');
  expect(await route.text()).toContain('id="app"');
  for (const p of ['/api/v1/nope', '/api', '/metrics', '/health', '/ready', '/openapi.json', '/assets/missing.js', '/../package.json']) {
    expect((await app.request(p)).status, p).toBe(404);
  }
  expect((await app.request('/sites/texas-1', { method: 'POST' })).status).toBe(404);
});

it('serves nothing when the console is not built', () => {
  expect(consoleHandler(join(dir, 'nowhere'))).toBeNull();
});
