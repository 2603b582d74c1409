import { Hono } from 'hono';
import { expect, it } from 'vitest';
import { jsonTextProblem, refuseNul } from './nul-guard.js';

const jsonHoldsNul = (text: string) => jsonTextProblem(text) === 'nul_character';

const app = new Hono();
app.use('*', refuseNul);
app.all('*', async (c) => c.json({ body: c.req.method === 'POST' ? await c.req.json().catch(() => 'not json') : null }));

it('finds a NUL in any string or key of a JSON body, and nothing else', () => {
  expect(jsonHoldsNul('{"a":"x\\u0000y"}')).toBe(true);
  expect(jsonHoldsNul('{"a\\u0000":1}')).toBe(true);
  expect(jsonHoldsNul('[[[{"deep":["\\u0000"]}]]]')).toBe(true);
  expect(jsonHoldsNul('{"a":"\\\\u0000"}')).toBe(false); // a backslash, then u0000: no NUL
  expect(jsonHoldsNul('{"a":"x"}')).toBe(false);
  expect(jsonHoldsNul('{"a":"\\u0000"')).toBe(false); // not JSON: the route says so
});

it('finds a lone surrogate in any string or key of a JSON body, and leaves pairs alone', () => {
  expect(jsonTextProblem('{"reason":"x\\ud800y"}')).toBe('invalid_unicode');
  expect(jsonTextProblem('{"\\udfff":1}')).toBe('invalid_unicode');
  expect(jsonTextProblem('{"reason":"\\ud83d\\udca5"}')).toBeNull(); // 💥, a pair
  expect(jsonTextProblem('{"reason":"\\u0000\\ud800"}')).toBe('nul_character');
});

it('refuses a lone surrogate in a JSON body with 400 invalid_unicode (PostgreSQL json cannot take it)', async () => {
  const r = await app.request('/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"mode":"manual","reason":"x\\ud800y"}' });
  expect(r.status).toBe(400);
  expect(((await r.json()) as { error: { reason: string } }).error.reason).toBe('invalid_unicode');
});

it('refuses %00 in the path or query and a NUL in a JSON body with 400 nul_character; the rest passes, its body still readable', async () => {
  for (const [path, init] of [
    ['/api/v1/keys/%00', {}],
    ['/api/v1/commands?site=a%00b', {}],
    ['/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"reason":"a\\u0000"}' }],
  ] as const) {
    const r = await app.request(path, init);
    expect(r.status, path).toBe(400);
    expect(((await r.json()) as { error: { reason: string } }).error.reason).toBe('nul_character');
  }
  const ok = await app.request('/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"reason":"%00 is fine as text"}' });
  expect(await ok.json()).toEqual({ body: { reason: '%00 is fine as text' } });
});
