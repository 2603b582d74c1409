import { describe, expect, it } from 'vitest';
import { ConfigError, loadControlPlaneConfig } from './config.js';

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
});
