import { noise } from './fixtures';

/** bsdiff's bspatch over an old range, as the reference the writer and decoder must agree with. */
export function bspatch(old: Buffer, controls: number[], diff: Buffer, extra: Buffer): Buffer {
  const out: number[] = [];
  let oldPos = 0;
  let d = 0;
  let e = 0;
  for (let c = 0; c < controls.length; c += 3) {
    for (let i = 0; i < controls[c]!; i++) {
      const o = oldPos + i >= 0 && oldPos + i < old.length ? old[oldPos + i]! : 0;
      out.push((diff[d++]! + o) & 0xff);
    }
    oldPos += controls[c]!;
    for (let i = 0; i < controls[c + 1]!; i++) out.push(extra[e++]!);
    oldPos += controls[c + 2]!;
  }
  return Buffer.from(out);
}

/** Random bsdiff-shaped controls: long mostly-zero add regions, bare seeks, backward seeks. */
export function randomPatch(seed: number, oldLength: number) {
  const rnd = noise(4096, seed);
  let r = 0;
  const next = (n: number) => ((rnd.readUInt32LE((r++ * 4) % 4092) >>> 0) % n) | 0;
  const controls: number[] = [];
  let adds = 0;
  let extras = 0;
  for (let c = 0; c < 12; c++) {
    const kind = next(4);
    const add = kind === 0 ? 0 : next(3) === 0 ? 40_000 + next(40_000) : next(300);
    const ext = kind === 0 ? 0 : next(50);
    controls.push(add, ext, next(2) === 0 ? -next(oldLength / 2) : next(oldLength / 3));
    adds += add;
    extras += ext;
  }
  const diff = Buffer.alloc(adds);
  // Few changed bytes: long unchanged runs between them, which the writer turns into copies.
  for (let i = 0; i < 6; i++) diff[next(Math.max(1, adds))] = 1 + next(255);
  return { controls, diff: diff.subarray(0, adds), extra: noise(extras, seed + 1) };
}
