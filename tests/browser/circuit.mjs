// Circuit sign-on in a real browser: Debian's chromium, headless, a fresh profile per run, driven
// by playwright-core. Run by tests/circuit.rs against `ssogate serve` and the real OAuth
// server (oidc-provider, https with the test's own CA: the browser is told to accept it).
//
//   node circuit.mjs login --base URL --provider URL --tenant T --login NAME --user USER
//                          [--choice yes] [--deny yes] --out DIR
//
// login: the tenant's login page → "Sign in with Circuit" (with --choice: the SSO tenant's choice
// page shows both ways first) → the provider's login and consent → the portal as USER;
// /auth/check 200 with X-Auth-Method circuit; Sign out → /auth/check 401. With --deny the
// consent is cancelled: the service shows "Circuit sign-in was cancelled or refused".
// Every check prints PASS or FAIL; the last line is "N passed, N failed".

import path from 'node:path';

import { args, artifactsDir, check, run } from './harness.mjs';

const a = args();
const artifacts = artifactsDir(a.out);

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `circuit-${a.tenant}-${name}.png`), fullPage: true });
}

// With the browser's cookies (the page's CSP allows no script fetch).
async function authCheck(page) {
  const r = await page.context().request.get(`${a.base}/auth/check`);
  const h = r.headers();
  return { status: r.status(), method: h['x-auth-method'], user: h['x-auth-user'] };
}

async function login(b) {
  const ctx = await b.newContext({ ignoreHTTPSErrors: true });
  const page = await ctx.newPage();
  await page.goto(`${a.base}/t/${a.tenant}/login`);
  await shot(page, '1-login-page');
  if (a.choice === 'yes') {
    check('the SSO tenant offers company sign-on', await page.isVisible('main #company-sign-on'), await page.content());
    const href = await page.getAttribute('main #company-sign-on', 'href');
    check('company sign-on goes to the IdP request', (href || '').includes('sso=1'), href);
  }
  check('the login page offers Sign in with Circuit', await page.isVisible('main #circuit-sign-in'), await page.content());
  await Promise.all([page.waitForURL(`${a.provider}/**`), page.click('main #circuit-sign-in')]);
  check('the button leads to the provider', page.url().startsWith(a.provider), page.url());
  await page.fill('input[name=login]', a.login);
  await page.fill('input[name=password]', 'any-password');
  await shot(page, '2-provider-login');
  await Promise.all([page.waitForLoadState('load'), page.click('button.login-submit')]);
  await shot(page, '3-provider-consent');
  if (a.deny === 'yes') {
    const [res] = await Promise.all([
      page.waitForResponse((r) => r.url().startsWith(`${a.base}/oauth/circuit/callback`)),
      page.click('text=[ Cancel ]'),
    ]);
    await page.waitForLoadState('load');
    await shot(page, '4-cancelled');
    check('a cancelled consent is refused with 403', res.status() === 403, res.status());
    const text = await page.textContent('main');
    check('the page says Circuit sign-in was cancelled', text.includes('Circuit sign-in was cancelled or refused'), text);
    check('the page gives a reference', /SG-[0-9A-F]{10}/.test(text), text);
    const c = await authCheck(page);
    check('nobody is signed in', c.status === 401, JSON.stringify(c));
    await ctx.close();
    return;
  }
  await Promise.all([page.waitForURL(`${a.base}/**`), page.click('button[type=submit]')]);
  await page.waitForLoadState('load');
  await shot(page, '4-portal');
  const text = await page.textContent('main');
  check('the portal shows the mapped user signed in by Circuit', text.includes(`(${a.user},`) && text.includes('by Circuit'), text);
  let c = await authCheck(page);
  check('/auth/check says 200, circuit, the user', c.status === 200 && c.method === 'circuit' && c.user === a.user, JSON.stringify(c));
  await Promise.all([page.waitForLoadState('load'), page.click('main button[type=submit]')]);
  await shot(page, '5-signed-out');
  c = await authCheck(page);
  check('after Sign out /auth/check says 401', c.status === 401, JSON.stringify(c));
  await ctx.close();
}

await run(a, { login });
