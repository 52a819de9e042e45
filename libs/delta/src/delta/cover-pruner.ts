import type { CoverPatch } from './cover-search';

/**
 * Shortest bsdiff cover (an `add` run: new bytes as old bytes plus a diff byte) worth its
 * control. A cover costs a control triple, most of it the seek to an often far-away old
 * position (about 2.9 compressed bytes per triple on node_modules), plus its diff bytes; new
 * bytes carried as literals cost about a quarter of a byte each in the literal stream. Measured on
 * the node-modules pair (37,754 controls): merging covers shorter than 40 bytes into the
 * literals around them took the delta from 274 kB to 235 kB; 32 and 48 gave within 0.2 %
 * of that, 128 lost 7 %.
 */
export const MIN_COVER = 40;

/**
 * bsdiff matches greedily: on minified code it emits tens of thousands of 10–20 byte covers,
 * each jumping somewhere else in the old file. This turns every cover shorter than
 * `minCover` into literal bytes (the new bytes themselves, read from `data`), merged into the
 * previous control: `(a₁, e₁, s₁), (a₂, e₂, s₂)` becomes `(a₁, e₁ + a₂ + e₂, s₁ + a₂ + s₂)`,
 * which leaves every later old position where it was. The patch rebuilds the same bytes.
 */
export function pruneShortCovers(patch: CoverPatch, data: Buffer, minCover = MIN_COVER): CoverPatch {
  const { controls } = patch;
  const out: number[] = [];
  const diffParts: Buffer[] = [];
  const extraParts: Buffer[] = [];
  let newPos = 0;
  let diffAt = 0;
  let extraAt = 0;
  let pruned = 0;
  for (let c = 0; c < controls.length; c += 3) {
    const add = controls[c]!;
    const ext = controls[c + 1]!;
    const seek = controls[c + 2]!;
    if (add > 0 && add < minCover) {
      // Cover → literal: the bytes it would have rebuilt, then its own extra bytes.
      extraParts.push(data.subarray(newPos, newPos + add + ext));
      if (out.length > 0) {
        out[out.length - 2]! += add + ext;
        out[out.length - 1]! += add + seek;
      } else out.push(0, add + ext, add + seek);
      pruned++;
    } else {
      out.push(add, ext, seek);
      diffParts.push(patch.diff.subarray(diffAt, diffAt + add));
      extraParts.push(patch.extra.subarray(extraAt, extraAt + ext));
    }
    newPos += add + ext;
    diffAt += add;
    extraAt += ext;
  }
  if (pruned === 0) return patch;
  return {
    controls: out,
    diff: Buffer.concat(diffParts),
    extra: Buffer.concat(extraParts),
  };
}
