import { z } from 'zod';
import { ConfigError, parseEnv } from './env';

const schema = z.object({
  PORT: z.coerce.number().int().max(65535),
  DATABASE_URL: z.string().startsWith('postgres://'),
  FERRY_ADMIN_TOKEN: z.string().min(16),
  AWS_SECRET_ACCESS_KEY: z.string().min(40),
  FERRY_PROVISIONING_KEY: z.string().min(16).optional(),
  NAME: z.string().max(10),
});

function problems(env: Record<string, string>): string[] {
  try {
    parseEnv(schema, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('no configuration error');
}

describe('parseEnv', () => {
  const good = {
    PORT: '8080',
    DATABASE_URL: 'postgres://ferry@db/ferry',
    FERRY_ADMIN_TOKEN: 'x'.repeat(16),
    AWS_SECRET_ACCESS_KEY: 'y'.repeat(40),
    NAME: 'ferry',
  };

  it('names every bad variable with its value and the reason', () => {
    expect(parseEnv(schema, good).PORT).toBe(8080);
    const found = problems({ ...good, PORT: 'eighty', NAME: '' });
    expect(found).toHaveLength(2);
    expect(found[0]).toMatch(/^PORT="eighty": /);
    expect(found[1]).toMatch(/^NAME="": /);
  });

  it('never shows a secret, nor the password of a URL', () => {
    const found = problems({
      ...good,
      FERRY_ADMIN_TOKEN: 'short-secret',
      AWS_SECRET_ACCESS_KEY: 'leaked-aws-secret',
      FERRY_PROVISIONING_KEY: 'leaked-prov-key',
      DATABASE_URL: 'mysql://ferry:db-password@db/ferry',
    });
    const text = found.join('\n');
    for (const secret of ['short-secret', 'leaked-aws-secret', 'leaked-prov-key', 'db-password'])
      expect(text).not.toContain(secret);
    expect(text).toContain('FERRY_ADMIN_TOKEN=(12 characters, hidden)');
    expect(text).toContain('FERRY_PROVISIONING_KEY=(15 characters, hidden)');
    expect(text).toContain('DATABASE_URL="mysql://ferry:***@db/ferry"');
  });

  it('cuts a huge value short', () => {
    const [problem] = problems({ ...good, NAME: 'n'.repeat(100_000) });
    expect(problem!.length).toBeLessThan(300);
    expect(problem).toContain('(100000 characters)');
  });
});
