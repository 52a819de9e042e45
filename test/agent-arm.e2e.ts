import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { encodeDelta } from '@ferry/delta';
import { noise } from './support/agent-images';
import { AGENT_BUNDLE, AGENT_NODE_FLAGS, buildAgentBundle } from './support/agent-process';
import { prepareArmNode } from './support/agent-arm';
import { buildAgentImages } from './support/agent-images';
import { runningReleases, startAgentWorld } from './support/agent-harness';
import { gnuTarLayer, sha256 } from './support/hostile-archives';

/**
 * The bundled agent on aarch64 and armv7: Debian's arm64 and armhf Node.js 18 under qemu-user rebuild a real
 * layer from a real delta with the bundle's decoder. Slow (emulation), so only with
 * FERRY_TEST_ARM=1 (`npm run test:arm`).
 */
describe('device agent on ARM (qemu-user, Debian Node.js 18 for arm64 and armhf)', () => {
  let work: string;
  beforeAll(() => {
    buildAgentBundle();
    work = mkdtempSync(join(tmpdir(), 'ferry-agent-arm-'));
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  let delta: string;
  let base: string;
  let target: string;
  beforeAll(async () => {
    const data = noise(9, 3_000_000);
    // A gzip'd file (as npm packs: Node's zlib at level 9) that changes: Debian's Node 18 must
    // inflate the old one and deflate the new contents to exactly the bytes the server's Node 20 saw.
    const docs = Buffer.from(data.subarray(0, 200_000).toString('base64'));
    const newDocs = Buffer.concat([docs.subarray(0, 100_000), Buffer.from('arm\n'), docs.subarray(100_000)]);
    base = join(work, 'base.tar');
    writeFileSync(
      base,
      gnuTarLayer(join(work, 'b'), {
        'app/data.bin': data.toString('latin1'),
        'app/VERSION': '1\n',
        'app/docs.tgz': gzipSync(docs, { level: 9 }),
      }),
    );
    const changed = Buffer.from(data);
    for (let i = 0; i < 50; i++) changed.write(`arm edit ${i}`, i * 59_999 + 7);
    target = join(work, 'target.tar');
    writeFileSync(
      target,
      gnuTarLayer(join(work, 't'), {
        'app/data.bin': changed.toString('latin1'),
        'app/VERSION': '2\n',
        'app/docs.tgz': gzipSync(newDocs, { level: 9 }),
      }),
    );
    delta = join(work, 'delta');
    const encoded = await encodeDelta({ bases: [base], target, out: delta });
    expect(encoded.stats.deflate.count).toBe(1);
    expect(encoded.stats.inflate.count).toBe(1);
  }, 120_000);

  it.each([
    ['arm64', 'arm64'],
    ['armhf', 'arm'],
  ] as const)(
    'runs the bundle on %s and rebuilds a layer from a delta byte for byte',
    (debArch, nodeArch) => {
      const node = prepareArmNode(debArch);

      const version = node.command([AGENT_BUNDLE, '--version']);
      expect(execFileSync(version.file, version.args).toString().trim()).toMatch(/^\d+\.\d+\.\d+$/);
      const out = join(work, `rebuilt-${debArch}.tar`);
      const apply = node.command([AGENT_BUNDLE, '--selftest-apply', delta, out, base]);
      const result = JSON.parse(execFileSync(apply.file, apply.args, { timeout: 300_000 }).toString()) as {
        digest: string;
        arch: string;
        node: string;
        peakRssBytes: number;
        ms: number;
      };
      process.stdout.write(`agent on ${debArch}: ${JSON.stringify(result)}\n`);
      expect(result.arch).toBe(nodeArch);
      expect(result.node).toMatch(/^v18\./);
      expect(result.digest).toBe(sha256(readFileSync(target)));
      expect(sha256(readFileSync(out))).toBe(sha256(readFileSync(target)));
    },
    600_000,
  );
});

describe('device agent on aarch64: a whole update through server, worker, broker and engine', () => {
  it('installs v1, then updates to v2 by delta, running under qemu-aarch64 on Node.js 18', async () => {
    buildAgentBundle();
    const node = prepareArmNode('arm64');
    const world = await startAgentWorld('arm');
    try {
      const images = buildAgentImages(join(world.work, 'images'), [
        { name: '1', edits: 0 },
        { name: '2', edits: 5 },
      ]);
      const v1 = await world.push(images.archive('1'), 1);
      const launcher = node.command(AGENT_NODE_FLAGS);
      const { agent, uuid } = await world.startAgent(
        join(world.work, 'device'),
        { FERRY_HEALTH_GRACE_MS: '3000' },
        launcher,
      );
      try {
        await world.setTarget(uuid, v1.id);
        await world.reported(uuid, 'running', v1.id, 300_000);
        const v2 = await world.push(images.archive('2'), 2);
        const [delta] = await world.deltasSettled(v2.id, 1);
        expect(delta?.state).toBe('ready');
        await world.setTarget(uuid, v2.id);
        await world.reported(uuid, 'running', v2.id, 300_000);
        expect((await runningReleases(world.engine)).running).toEqual([v2.id]);
        expect(world.proxy.served.get(delta!.digest!)).toBe(delta!.size);
        expect(world.proxy.served.get(v2.services[0]!.layers[1]!.gzipDigest)).toBeUndefined();
        expect(agent.lines().some((l) => l.msg === 'layer rebuilt from delta')).toBe(true);
        process.stdout.write(`agent under qemu-aarch64: v1 → v2 by a ${delta!.size}-byte delta\n`);
      } finally {
        await agent.kill();
      }
    } finally {
      await world.close();
    }
  }, 900_000);
});
