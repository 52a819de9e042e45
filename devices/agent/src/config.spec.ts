import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadAgentConfig } from './config';

describe('agent configuration', () => {
  it('needs FERRY_API_URL and names it', () => {
    expect(() => loadAgentConfig({})).toThrow(/FERRY_API_URL is required/);
    expect(() => loadAgentConfig({ FERRY_API_URL: 'ftp://x' })).toThrow(/FERRY_API_URL must be an http/);
  });

  it('applies defaults and names the variable of a bad number', () => {
    const config = loadAgentConfig({ FERRY_API_URL: 'https://ferry.example.com/' });
    expect(config.apiUrl).toBe('https://ferry.example.com');
    expect(config.downloadConcurrency).toBe(3);
    expect(config.networkMode).toBe('host');
    expect(config.dataDir).toBe('/var/lib/ferry-agent');
    expect(config.windowRecheckMs).toBe(60_000);
    expect(config.serviceReportMs).toBe(15_000);
    expect(() => loadAgentConfig({ FERRY_API_URL: 'http://x', FERRY_POLL_INTERVAL_MS: 'soon' })).toThrow(
      /FERRY_POLL_INTERVAL_MS/,
    );
    expect(() => loadAgentConfig({ FERRY_API_URL: 'http://x', FERRY_SERVICE_REPORT_MS: '10' })).toThrow(
      /FERRY_SERVICE_REPORT_MS must be an integer >= 100/,
    );
  });

  it('reads a JSON file named by FERRY_AGENT_CONFIG, the environment winning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-config-'));
    try {
      const file = join(dir, 'agent.json');
      writeFileSync(
        file,
        JSON.stringify({
          FERRY_API_URL: 'http://file',
          FERRY_NETWORK_MODE: 'none',
          FERRY_HEALTH_GRACE_MS: 500,
        }),
      );
      const config = loadAgentConfig({ FERRY_AGENT_CONFIG: file, FERRY_NETWORK_MODE: 'host' });
      expect(config.apiUrl).toBe('http://file');
      expect(config.networkMode).toBe('host');
      expect(config.healthGraceMs).toBe(500);
      expect(() => loadAgentConfig({ FERRY_AGENT_CONFIG: join(file, 'missing') })).toThrow(
        /FERRY_AGENT_CONFIG/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
