// What both wallet-client scripts share: step reports, checks, time limits, and sending until
// a watcher sees one of ours.
const started = Date.now();

export function report(step, detail) {
  console.log(JSON.stringify({ step, ms: Date.now() - started, detail },
    (k, v) => (typeof v === "bigint" ? v.toString() : v)));
}

export function check(condition, message) {
  if (!condition) throw new Error(message);
}

export function within(ms, promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms)),
  ]);
}

// A watcher installs its filter when the library gets to it, and a filter reports only what
// happens after it exists (as geth's): send until the watcher sees one of ours.
export async function sendUntilSeen(seen, send, what) {
  for (let attempt = 1; attempt <= 10; attempt++) {
    await send();
    const got = await Promise.race([seen, new Promise((resolve) => setTimeout(() => resolve(null), 1000))]);
    if (got !== null) return [got, attempt];
  }
  throw new Error(`${what}: nothing seen after 10 sends`);
}
