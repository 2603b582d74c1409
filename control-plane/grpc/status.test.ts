import { status } from '@grpc/grpc-js';
import { expect, it } from 'vitest';
import { grpcError, MAX_DETAILS } from './status.js';

it('keeps the details short enough for any client to read, and encodable', () => {
  const long = grpcError(status.NOT_FOUND, 'unknown_site', `site "${'é'.repeat(70_000)}" not found`);
  expect([...long.details].length).toBe(MAX_DETAILS + 1);
  expect(() => encodeURI(long.details)).not.toThrow();
  const lone = grpcError(status.NOT_FOUND, 'unknown_device', 'device a\uD800b is not at site x');
  expect(lone.details).toBe('device a\uFFFDb is not at site x');
  expect(() => encodeURI(lone.details)).not.toThrow();
  // a pair is kept whole, also at the cut
  expect(grpcError(status.NOT_FOUND, 'x', `${'a'.repeat(MAX_DETAILS - 1)}💥💥`).details).toBe(`${'a'.repeat(MAX_DETAILS - 1)}💥…`);
  expect(long.metadata.get('hcp-reason')).toEqual(['unknown_site']);
});
