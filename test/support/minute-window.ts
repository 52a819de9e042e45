const MINUTE_MS = 60_000;

/**
 * Waits, when fewer than `seconds` are left in the current wall-clock minute, until the next minute
 * starts. The failure limits count per minute with the previous minute's count weighted down as it
 * slides out, so a test that expects an exact count must not straddle a minute's end.
 */
export async function awaitRoomInMinute(seconds: number): Promise<void> {
  const left = MINUTE_MS - (Date.now() % MINUTE_MS);
  if (left < seconds * 1000) await new Promise((resolve) => setTimeout(resolve, left + 50));
}
