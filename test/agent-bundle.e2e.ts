import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_BUNDLE, AGENT_NODE_FLAGS, buildAgentBundle } from './support/agent-process';

const BUILD = join(__dirname, '..', 'devices', 'agent', 'build.mjs');

/**
 * The agent bundle as it ships: one file, Node built-ins only, no zod (about 12 MB of a device's RSS),
 * no native module. The agent reaches the libraries only through their light entry points
 * (`@ferry/protocol/wire`, `@ferry/delta/decoder`); the build refuses anything heavier.
 */
describe('device agent bundle', () => {
  let work: string;
  beforeAll(() => {
    buildAgentBundle();
    work = mkdtempSync(join(tmpdir(), 'ferry-agent-bundle-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** Bundles `source` as an agent entry; the build's exit status and stderr. */
  function bundle(source: string): { status: number | null; stderr: string; out: string } {
    const entry = join(work, `entry-${Math.random().toString(36).slice(2)}.ts`);
    const out = `${entry}.js`;
    writeFileSync(entry, source);
    const run = spawnSync(process.execPath, [BUILD, entry, out], { encoding: 'utf8' });
    return { status: run.status, stderr: run.stderr, out };
  }

  it('bundles into one file that requires nothing but Node built-ins', () => {
    const code = readFileSync(AGENT_BUNDLE, 'utf8');
    expect(code).not.toMatch(/require\(["'][^"']+\.node["']\)/);
    expect(code).not.toContain('bsdiff-node');
    expect(code).not.toContain('better-sqlite3');
    const requires = new Set(
      [...code.matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]!.replace(/^node:/, '')),
    );
    const builtins = new Set(builtinModules);
    expect([...requires].filter((r) => !builtins.has(r))).toEqual([]);
  });

  it('starts Node with the same flags wherever it ships: the shebang, the unit file, the Dockerfile', () => {
    const flags = AGENT_NODE_FLAGS.join(' ');
    expect(flags).toContain('--lite-mode');
    const shebang = readFileSync(AGENT_BUNDLE, 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${flags}`);
    const agentDir = join(__dirname, '..', 'devices', 'agent');
    const unit = readFileSync(join(agentDir, 'ferry-agent.service'), 'utf8');
    expect(unit).toContain(`ExecStart=/usr/bin/node ${flags} /opt/ferry-agent/ferry-agent.js`);
    const dockerfile = readFileSync(join(agentDir, 'Dockerfile'), 'utf8');
    const entrypoint = /^ENTRYPOINT (.*)$/m.exec(dockerfile)?.[1] ?? 'null';
    expect(JSON.parse(entrypoint)).toEqual(['node', ...AGENT_NODE_FLAGS, '/opt/ferry-agent/ferry-agent.js']);
    // Started so, the agent runs and prints nothing on stderr (a flag Node refuses or warns about would).
    const run = spawnSync(process.execPath, [...AGENT_NODE_FLAGS, AGENT_BUNDLE, '--version'], {
      encoding: 'utf8',
    });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toMatch(/^\d+\.\d+/);
  });

  it('contains no zod', () => {
    const code = readFileSync(AGENT_BUNDLE, 'utf8');
    // Strings zod's runtime cannot do without (its error class and its issue codes).
    expect(code).not.toContain('ZodError');
    expect(code).not.toContain('invalid_type');
  });

  it('the light entry points bundle without zod and still do their job', () => {
    const built = bundle(
      [
        "import { canonicalJson, deviceTopic, ROLLOUT_DEVICE_STATES } from '@ferry/protocol/wire';",
        "import { applyDelta } from '@ferry/delta/decoder';",
        'console.log(canonicalJson({ b: 1, a: [deviceTopic("u", "state")] }), ROLLOUT_DEVICE_STATES.length, typeof applyDelta);',
      ].join('\n'),
    );
    expect(built.stderr).toBe('');
    expect(built.status).toBe(0);
    const code = readFileSync(built.out, 'utf8');
    expect(code).not.toContain('ZodError');
    const run = spawnSync(process.execPath, [built.out], { encoding: 'utf8' });
    expect(run.stdout.trim()).toBe('{"a":["ferry/v1/devices/u/state"],"b":1} 10 function');
  });

  it('refuses to build when zod reaches the bundle, naming it', () => {
    const built = bundle("import { z } from 'zod';\nconsole.log(z.string().parse('x'));\n");
    expect(built.status).toBe(1);
    expect(built.stderr).toMatch(/must not bundle[\s\S]*node_modules\/zod\//);
  });

  it('refuses the full library entry points (they carry zod and the native encoder)', () => {
    for (const name of ['@ferry/protocol', '@ferry/delta']) {
      const built = bundle(`import * as lib from '${name}';\nconsole.log(Object.keys(lib).length);\n`);
      expect(built.status).toBe(1);
      expect(built.stderr).toContain(`${name} is not a light entry point`);
    }
  });
});
