// What both browser scripts (converse.mjs, converse_profanity.mjs) share: waiting, logging,
// the verdict lines and the whole-run deadline.
import { appendFileSync } from "node:fs";

// Every wait in the page is bounded by this.
export const STEP_MS = 20000;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

// Polls `pred` every 100 ms until it returns something truthy (returned), at most `ms`.
export async function until(what, pred, ms = STEP_MS) {
  for (let t = 0; t < ms; t += 100) {
    const v = await pred();
    if (v) return v;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// Verdicts ({ case: "fail" } until set to "pass"), printed and appended to `results` as
// "browser/<case> pass|fail" by report(); past `deadlineMs` the run reports and exits 1.
export function verdictsWithDeadline(cases, results, deadlineMs) {
  const verdicts = Object.fromEntries(cases.map((c) => [c, "fail"]));
  const report = () => {
    for (const [name, v] of Object.entries(verdicts)) {
      const line = `browser/${name} ${v}`;
      console.log(line);
      if (results) appendFileSync(results, line + "\n");
    }
  };
  const deadline = setTimeout(() => {
    console.error(`browser: the whole run took over ${deadlineMs / 1000} s`);
    report();
    process.exit(1);
  }, deadlineMs);
  return { verdicts, report, deadline };
}
