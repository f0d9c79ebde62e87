// What the browser scripts share: their arguments (`PHASE --name value …`), PASS/FAIL checks
// with a closing "N passed, N failed" line, screenshots, and Debian's chromium (headless, a
// fresh profile per context; playwright-core never downloads a browser).

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

export function args() {
  const [phase, ...rest] = process.argv.slice(2);
  const a = { phase };
  for (let i = 0; i < rest.length; i += 2) {
    a[rest[i].replace(/^--/, '').replace(/-/g, '_')] = rest[i + 1];
  }
  return a;
}

let passed = 0;
let failed = 0;

export function check(name, ok, seen) {
  if (ok) {
    passed += 1;
    console.log(`PASS ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL ${name}: ${seen}`);
  }
  return ok;
}

/// Screenshots go to $SSOGATE_ARTIFACTS (default DIR/artifacts).
export function artifactsDir(out) {
  const dir = process.env.SSOGATE_ARTIFACTS || path.join(out, 'artifacts');
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.SSOGATE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    // Root in a container has no user namespaces for chromium's sandbox.
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
}

/// Runs `phases[a.phase]` with a browser, then prints the counts and exits 0 only if all passed.
export async function run(a, phases) {
  const b = await launch();
  try {
    const phase = phases[a.phase];
    if (!phase) throw new Error(`unknown phase ${a.phase}`);
    await phase(b);
  } catch (e) {
    check(`phase ${a.phase} ran to its end`, false, e.stack || e);
  } finally {
    await b.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}
