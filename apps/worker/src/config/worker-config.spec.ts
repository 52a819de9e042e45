import { ConfigError } from '@ferry/protocol';
import { loadWorkerConfig } from './worker-config';

const INSTALL = '0123456789abcdef';
const env = (extra: Record<string, string> = {}) => ({ DATA_DIR: '/nonexistent/ferry-worker', ...extra });

describe('loadWorkerConfig: the encoder settings', () => {
  it('gives a delta job 1 GiB and quality 11 for up to 12 MiB of new bytes by default', () => {
    const config = loadWorkerConfig(env(), INSTALL);
    expect(config.deltaMemoryBytes).toBe(2 ** 30);
    expect(config.deltaStrongLiteralBytes).toBe(12 * 2 ** 20);
    expect(
      loadWorkerConfig(env({ WORKER_DELTA_STRONG_LITERAL_MB: '96' }), INSTALL).deltaStrongLiteralBytes,
    ).toBe(96 * 2 ** 20);
    // Blank is unset, as for every variable.
    expect(
      loadWorkerConfig(env({ WORKER_DELTA_STRONG_LITERAL_MB: '' }), INSTALL).deltaStrongLiteralBytes,
    ).toBe(12 * 2 ** 20);
    // 0: quality 9 for any literal section.
    expect(
      loadWorkerConfig(env({ WORKER_DELTA_STRONG_LITERAL_MB: '0' }), INSTALL).deltaStrongLiteralBytes,
    ).toBe(0);
  });

  it.each(['-1', '1025', '1.5', 'all', '12MB'])(
    'refuses WORKER_DELTA_STRONG_LITERAL_MB=%j, naming it',
    (bad) => {
      expect(() => loadWorkerConfig(env({ WORKER_DELTA_STRONG_LITERAL_MB: bad }), INSTALL)).toThrow(
        ConfigError,
      );
      expect(() => loadWorkerConfig(env({ WORKER_DELTA_STRONG_LITERAL_MB: bad }), INSTALL)).toThrow(
        /WORKER_DELTA_STRONG_LITERAL_MB/,
      );
    },
  );
});
