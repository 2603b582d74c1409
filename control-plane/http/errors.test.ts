// The REST error path: hono's own refusals keep their 4xx status and get the error body.
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { onError, validationHook } from './errors.js';

const app = new OpenAPIHono({ defaultHook: validationHook as never });
app.onError(onError(pino({ level: 'silent' })));
app.openapi(
  createRoute({
    method: 'post',
    path: '/x',
    request: { body: { content: { 'application/json': { schema: z.object({ a: z.number() }) } }, required: true } },
    responses: { 200: { description: 'ok' } },
  }),
  (c) => c.json({ ok: true }, 200),
);

it('answers a body of another media type 415 with the error body, not 500', async () => {
  const r = await app.request('/x', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'null' });
  expect(r.status).toBe(415);
  expect(((await r.json()) as { error: unknown }).error).toMatchObject({ code: 'invalid_argument', reason: 'unsupported_media_type', message: expect.any(String) });
});

it('still answers malformed JSON 400', async () => {
  const r = await app.request('/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{' });
  expect(r.status).toBe(400);
  expect(((await r.json()) as { error: { reason: string } }).error.reason).toBe('malformed_body');
});
