import { setFlagsFromString } from 'node:v8';
import { applyDelta } from '@ferry/delta/decoder';
import { Agent } from './agent';
import { loadAgentConfig } from './config';
import { AGENT_VERSION } from './credentials';
import { AgentConfigError } from './errors';
import { createLogger } from './log';

// V8's optimizing compiler (TurboFan) is off for the whole agent, however it is started: when the
// delta decoder's loops turn hot it compiles them with 10–15 MiB of compiler memory and code pages,
// more than every buffer of the decoder, which kept a delta apply over the 64 MiB budget. The agent
// waits on the network and disks; its interpreted and baseline-compiled code is fast enough
// (BENCHMARKS.md, "Agent": peak RSS and apply times with and without it).
setFlagsFromString('--no-opt');

/**
 * `ferry-agent` — runs the agent; `ferry-agent --selftest-apply <delta> <out> <base>...` rebuilds
 * one layer with the bundled decoder and prints its digest and the peak RSS (used on ARM and in
 * the memory benchmark); `--version` prints the version.
 */
async function main(argv: string[]): Promise<number> {
  if (argv[0] === '--version') {
    process.stdout.write(`${AGENT_VERSION}\n`);
    return 0;
  }
  if (argv[0] === '--selftest-apply') {
    const [delta, out, ...bases] = argv.slice(1);
    if (!delta || !out || bases.length === 0) {
      process.stderr.write('usage: ferry-agent --selftest-apply <delta> <out> <base>...\n');
      return 2;
    }
    let peak = 0;
    // Array buffers (the decoder's windows and buffers, and those garbage not yet collected).
    let peakArrayBuffers = 0;
    const sample = (): void => {
      const usage = process.memoryUsage();
      peak = Math.max(peak, usage.rss);
      peakArrayBuffers = Math.max(peakArrayBuffers, usage.arrayBuffers);
    };
    sample();
    const sampling = setInterval(sample, 5);
    const started = Date.now();
    const result = await applyDelta({ delta, out, bases });
    clearInterval(sampling);
    sample();
    process.stdout.write(
      `${JSON.stringify({ digest: `sha256:${result.digest}`, size: result.size, ms: Date.now() - started, peakRssBytes: peak, peakArrayBuffersBytes: peakArrayBuffers, arch: process.arch, node: process.version })}\n`,
    );
    return 0;
  }
  const config = loadAgentConfig();
  const log = createLogger(config.logLevel);
  const agent = new Agent(config, log);
  const shutdown = (signal: string): void => {
    log.info('stopping', { signal });
    void agent.stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  await agent.start();
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (error: Error) => {
    process.stderr.write(
      `ferry-agent: ${error instanceof AgentConfigError ? error.message : (error.stack ?? error.message)}\n`,
    );
    process.exit(error instanceof AgentConfigError ? 78 : 1);
  },
);
