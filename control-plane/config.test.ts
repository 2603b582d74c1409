import { describe, expect, it } from 'vitest';
import { ConfigError, loadControlPlaneConfig, redactUrl } from './config.js';

describe('control-plane configuration', () => {
  it('defaults to the embedded system on the documented ports', () => {
    expect(loadControlPlaneConfig({})).toMatchObject({ HCP_HTTP_PORT: 8080, HCP_GRPC_PORT: 50051, HCP_MQTT_PORT: 1883, HCP_BROKER: 'embedded', HCP_DATA_DIR: './data' });
    expect(loadControlPlaneConfig({}).DATABASE_URL).toBeUndefined();
  });

  it('lists every bad value', () => {
    try {
      loadControlPlaneConfig({ HCP_HTTP_PORT: '99999', DATABASE_URL: 'mysql://x', LOG_LEVEL: 'loud', HCP_BROKER: 'remote' });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as ConfigError).problems.map((p) => p.split(':')[0]).sort()).toEqual(['DATABASE_URL', 'HCP_BROKER', 'HCP_HTTP_PORT', 'LOG_LEVEL']);
    }
  });

  it('never prints a secret in its complaints', () => {
    try {
      loadControlPlaneConfig({ DATABASE_URL: 'postgres://hcp:hunter2@db:5432/hcp', HCP_ADMIN_KEY: 'hcp_short', HCP_HTTP_PORT: 'x' });
      expect.unreachable();
    } catch (err) {
      const text = (err as Error).message;
      expect(text).toMatch(/HCP_ADMIN_KEY/);
      expect(text).not.toContain('hcp_short');
    }
    expect(redactUrl('postgres://hcp:hunter2@db:5432/hcp')).toBe('postgres://hcp:***@db:5432/hcp');
    expect(redactUrl('postgres://db/hcp')).toBe('postgres://db/hcp');
  });

  it('takes TLS files in pairs', () => {
    expect(() => loadControlPlaneConfig({ HCP_TLS_CERT: 'c.pem' })).toThrow(/give both or neither/);
    expect(() => loadControlPlaneConfig({ HCP_TLS_CLIENT_CA: 'ca.pem' })).toThrow(/needs HCP_TLS_CERT/);
  });
});
