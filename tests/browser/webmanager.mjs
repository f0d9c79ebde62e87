// The Web Manager in a real browser: Debian's chromium, headless, a fresh profile per context,
// driven by playwright-core (never a browser download). Run by tests/browser.rs in phases, the
// Rust side starting and stopping ssogate and SimpleSAMLphp between them:
//
//   node webmanager.mjs setup     --base URL --password OTP --new-password PW --sp-url URL --out DIR
//   node webmanager.mjs configure --base URL --new-password PW --idp-metadata FILE --idp-sso-post URL --out DIR
//   node webmanager.mjs login     --base URL --new-password PW --sp-url URL --out DIR
//   node webmanager.mjs badinput  --base URL --new-password PW --files DIR --out DIR
//   node webmanager.mjs stale     --base URL --new-password PW --out DIR
//
// Every check prints PASS or FAIL with what it saw; the last line is "N passed, N failed".
// Screenshots go to $SSOGATE_ARTIFACTS (default DIR/artifacts).

import fs from 'node:fs';
import path from 'node:path';

import { args, artifactsDir, check, run } from './harness.mjs';

const WINDOWS_ACCOUNT = 'http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname';

const a = args();
const artifacts = artifactsDir(a.out);

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

async function context(b, base) {
  const ctx = await b.newContext({ acceptDownloads: true });
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  return ctx;
}

async function signIn(page, base, user, password) {
  await page.goto(`${base}/webmanager/signin`);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await Promise.all([page.waitForLoadState('load'), page.click('main button[type=submit]')]);
}

async function setup(b) {
  const ctx = await context(b, a.base);
  const page = await ctx.newPage();
  await signIn(page, a.base, 'admin', a.password);
  check('the one-time password leads to the password change', page.url().endsWith('/webmanager/password'), page.url());
  await shot(page, '01-forced-password-change');
  await page.fill('#password', a.new_password);
  await page.fill('#confirm', a.new_password);
  await Promise.all([page.waitForURL('**/webmanager/sps'), page.click('main button[type=submit]')]);
  check('after the change, the service providers', page.url().endsWith('/webmanager/sps'), page.url());

  await page.click('text=Add service provider');
  await page.fill('#host_url', a.sp_url);
  await page.check('#generate_key');
  await shot(page, '02-add-sp');
  await Promise.all([page.waitForURL('**/metadata'), page.click('main button:has-text("Save")')]);
  check('the new SP shows its metadata', page.url().includes('/webmanager/sps/'), page.url());
  const spId = page.url().split('/webmanager/sps/')[1].split('/')[0];
  await shot(page, '03-sp-metadata');

  await page.click('#copy-metadata');
  await page.waitForSelector('#copy-status:has-text("Copied")');
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  fs.writeFileSync(path.join(a.out, 'copied.xml'), copied);
  check('Copy put the metadata on the clipboard', copied.includes('EntityDescriptor'), copied.slice(0, 80));

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download-metadata')]);
  const name = download.suggestedFilename();
  await download.saveAs(path.join(a.out, 'downloaded.xml'));
  check('the download is named ssogate_<host>_metadata.xml', /^ssogate_localhost_\d+_metadata\.xml$/.test(name), name);

  await page.goto(`${a.base}/webmanager/sps`);
  const listed = await page.textContent('table');
  check('the SP list shows the new SP with its key', listed.includes(a.sp_url) && listed.includes('yes'), listed.slice(0, 200));
  await shot(page, '04-sp-list');
  fs.writeFileSync(path.join(a.out, 'setup.json'), JSON.stringify({ sp_id: spId }));
  await ctx.close();
}

async function adminPage(b) {
  const ctx = await context(b, a.base);
  const page = await ctx.newPage();
  await signIn(page, a.base, 'admin', a.new_password);
  return { ctx, page };
}

async function configure(b) {
  const { ctx, page } = await adminPage(b);
  await page.goto(`${a.base}/webmanager/idps/import`);
  await page.fill('#username_mapping', WINDOWS_ACCOUNT);
  await page.setInputFiles('#metadata_file', a.idp_metadata);
  await Promise.all([page.waitForLoadState('load'), page.click('button[value=preview]')]);
  await shot(page, '05-idp-preview');
  const posts = await page.$$eval('#preview tr.sso', (rows) => rows.map((r) => [r.querySelector('.binding').textContent, r.querySelector('.location').textContent]));
  check('the preview shows the POST location', posts.some(([bnd, loc]) => bnd === 'post' && loc === a.idp_sso_post), JSON.stringify(posts));
  check('the mapping is kept across the preview', (await page.inputValue('#username_mapping')) === WINDOWS_ACCOUNT, await page.inputValue('#username_mapping'));
  await page.fill('#name', 'ssp');
  await Promise.all([page.waitForURL('**/webmanager/idps'), page.click('button[value=add]')]);
  const idps = await page.textContent('table');
  check('the IdP is listed with the windowsaccountname mapping and the POST binding', idps.includes('ssp') && idps.includes(WINDOWS_ACCOUNT) && idps.includes('(post)'), idps.slice(0, 300));
  await shot(page, '06-idp-list');

  await page.goto(`${a.base}/webmanager/tenants/default`);
  await page.fill('#login_domains', 'example');
  await page.check('#sso_enabled');
  await page.selectOption('#idp', 'ssp');
  await page.check('#slo_enabled');
  await Promise.all([page.waitForURL('**/webmanager/tenants'), page.click('button:has-text("Save")')]);
  const tenants = await page.textContent('table');
  check('the tenant has SSO, the IdP and SLO on', /default[\s\S]*on[\s\S]*ssp[\s\S]*on/.test(tenants), tenants.slice(0, 300));
  await shot(page, '07-tenants');

  await page.goto(`${a.base}/webmanager/users/new?tenant=default`);
  await page.fill('#username', 'agent1');
  await page.fill('#display_name', 'Agent One');
  await Promise.all([page.waitForURL('**/webmanager/users?tenant=default'), page.click('button:has-text("Save")')]);
  const users = await page.textContent('table');
  check('agent1 is a user of the tenant', users.includes('agent1') && users.includes('Agent One'), users.slice(0, 300));
  await shot(page, '08-users');
  await ctx.close();
}

async function login(b) {
  // The agent, in a fresh context of its own.
  const agent = await b.newContext();
  const ap = await agent.newPage();
  const checkAuth = async () => (await agent.request.get(`${a.sp_url}/auth/check`)).status();
  check('before sign-in /auth/check is 401', (await checkAuth()) === 401, 'not 401');
  // The IdP's answer as it is posted to the ACS (the SAML tracer is shown it afterwards).
  let posted = null;
  ap.on('request', (req) => {
    if (req.method() === 'POST' && req.url().endsWith('/saml/acs')) {
      posted = new URLSearchParams(req.postData() || '').get('SAMLResponse');
    }
  });
  await ap.goto(`${a.sp_url}/login`);
  await ap.waitForSelector('input[type=password]');
  await ap.fill('input[name=username]', 'agent1');
  await ap.fill('input[type=password]', 'agent1pass');
  await Promise.all([ap.waitForURL(`${a.sp_url}/**`, { timeout: 20000 }), ap.press('input[type=password]', 'Enter')]);
  await ap.waitForLoadState('load');
  await shot(ap, '09-agent-signed-in');
  check('agent1 is signed in through SimpleSAMLphp: /auth/check 200', (await checkAuth()) === 200, ap.url());
  check('the SAMLResponse the IdP posted was seen', !!posted, 'no POST to /saml/acs');
  if (posted) fs.writeFileSync(path.join(a.out, 'agent1-response.b64'), posted);

  const { ctx, page } = await adminPage(b);
  await page.goto(`${a.base}/webmanager/activity?tenant=default`);
  const now = await page.textContent('#sessions');
  check('the activity shows agent1 signed in', now.includes('agent1') && now.includes('saml'), now.slice(0, 200));
  check('the chart counts 1 successful sign-in', (await page.textContent('#chart-successes')).trim() === '1', await page.textContent('#chart-successes'));
  await shot(page, '10-activity-signed-in');

  // The SAML tracer on that real response: it was used, so the replay step says "seen before".
  if (posted) {
    await page.goto(`${a.base}/webmanager/tracer`);
    await page.fill('#response', posted);
    await Promise.all([page.waitForLoadState('load'), page.click('main button:has-text("Trace")')]);
    const replay = await page.textContent('#trace tr.failed');
    check('the tracer shows the real response as seen before', /replay[\s\S]*failed[\s\S]*replayed[\s\S]*seen before: yes/.test(replay || ''), (replay || '').slice(0, 300));
    await shot(page, '10b-tracer-replayed');
  }

  // Single logout: the portal's sign-out button, through the IdP and back.
  await ap.goto(`${a.sp_url}/logout`);
  await ap.click('main button[type=submit]');
  // Through the IdP's single logout and back to our SLO endpoint, which says so.
  await ap.waitForFunction(() => document.title === 'Signed out' && location.pathname.endsWith('/saml/slo'), null, { timeout: 20000 });
  await shot(ap, '11-agent-signed-out');
  check('the sign-out went through the IdP and back', ap.url().includes('/saml/slo?SAMLResponse='), ap.url().slice(0, 80));
  check('after single logout /auth/check is 401', (await checkAuth()) === 401, ap.url());
  await page.goto(`${a.base}/webmanager/activity?tenant=default`);
  const after = await page.textContent('#sessions');
  check('the activity shows agent1 signed out', !after.includes('agent1'), after.slice(0, 200));
  await shot(page, '12-activity-signed-out');
  await ctx.close();
  await agent.close();
}

// Bad input: each case fills a form, submits it, and must get its message beside the field
// (`#error-FIELD`), the input it typed back (never a password or a key), and no change (the Rust
// side compares `ssogate … list` before and after).
async function badinput(b) {
  const { ctx, page } = await adminPage(b);
  const file = (name) => fs.readFileSync(path.join(a.files, name), 'utf8');
  const idpBase = { '#entity_id': 'https://idp.bad.example/idp', '#sso_url': 'https://idp.bad.example/sso', '#username_mapping': 'upn' };
  const cases = [
    { name: 'SP: a relative host URL', url: '/webmanager/sps/new', fill: { '#host_url': 'cc.example.com/agentportal' }, field: 'host_url', text: 'must start with http' },
    { name: 'SP: a host URL with a query', url: '/webmanager/sps/new', fill: { '#host_url': 'https://cc.example.com/portal?x=1' }, field: 'host_url', text: 'query' },
    { name: 'SP: a certificate that is not one', url: '/webmanager/sps/new', fill: { '#host_url': 'https://cc.example.com/a', '#certificate': 'hello, I am no certificate', '#private_key': file('key.pem') }, field: 'certificate', text: 'not a PEM certificate' },
    { name: 'SP: a key not matching the certificate', url: '/webmanager/sps/new', fill: { '#host_url': 'https://cc.example.com/b', '#certificate': file('cert.pem'), '#private_key': file('other-key.pem') }, field: 'private_key', text: 'does not belong' },
    { name: 'SP: a public key for the private key', url: '/webmanager/sps/new', fill: { '#host_url': 'https://cc.example.com/c', '#certificate': file('cert.pem'), '#private_key': file('public.pem') }, field: 'private_key', text: 'the certificate already carries it' },
    { name: 'SP: a duplicate host URL', url: '/webmanager/sps/new', fill: { '#host_url': a.base }, field: 'host_url', text: 'already has host URL' },
    { name: 'IdP: a fingerprint of the wrong length', url: '/webmanager/idps/new', fill: { ...idpBase, '#fingerprint': 'AB:CD:EF' }, field: 'fingerprint', text: 'fingerprint' },
    { name: 'IdP: a fingerprint that is not hex', url: '/webmanager/idps/new', fill: { ...idpBase, '#fingerprint': 'zz'.repeat(32) }, field: 'fingerprint', text: 'fingerprint' },
    { name: 'IdP: a certificate that is not one', url: '/webmanager/idps/new', fill: { ...idpBase, '#certificates': '-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----' }, field: 'certificates', text: 'certificate' },
    { name: 'IdP: an empty username mapping', url: '/webmanager/idps/new', fill: { ...idpBase, '#username_mapping': '', '#certificates': file('cert.pem') }, field: 'username_mapping', text: 'username mapping' },
    { name: 'IdP: a relative SSO URL', url: '/webmanager/idps/new', fill: { ...idpBase, '#sso_url': '/sso', '#certificates': file('cert.pem') }, field: 'sso_url', text: 'must start with http' },
    { name: 'IdP: a duplicate name', url: '/webmanager/idps/new', fill: { ...idpBase, '#name': 'ssp', '#certificates': file('cert.pem') }, field: 'name', text: 'already exists' },
    { name: 'IdP: a duplicate entity ID', url: '/webmanager/idps/new', fill: { ...idpBase, '#entity_id': file('ssp-entity-id.txt').trim(), '#certificates': file('cert.pem') }, field: 'entity_id', text: 'already has entity ID' },
    { name: 'Import: metadata without IDPSSODescriptor', url: '/webmanager/idps/import', fill: { '#username_mapping': 'upn', '#metadata': file('sp-only.xml') }, field: 'metadata', text: 'IDPSSODescriptor', submit: 'button[value=preview]' },
    { name: 'Import: metadata with a DOCTYPE', url: '/webmanager/idps/import', fill: { '#username_mapping': 'upn', '#metadata': file('doctype.xml') }, field: 'metadata', text: 'DTD', submit: 'button[value=preview]' },
    { name: 'Import: oversized metadata', url: '/webmanager/idps/import', fill: { '#username_mapping': 'upn' }, files: { '#metadata_file': path.join(a.files, 'oversized.xml') }, field: 'metadata', text: 'at most 1048576', submit: 'button[value=preview]', keep: [] },
    { name: 'Import: an aggregate without a choice', url: '/webmanager/idps/import', fill: { '#username_mapping': 'upn', '#metadata': file('aggregate.xml') }, field: null, text: 'choose one', submit: 'button[value=preview]' },
    { name: 'Import: an empty username mapping', url: '/webmanager/idps/import', fill: { '#username_mapping': '', '#metadata': file('single.xml') }, field: 'username_mapping', text: 'username mapping', preview: true, submit: 'button[value=add]' },
    { name: 'Tenant: a login domain of another tenant', url: '/webmanager/tenants/new', fill: { '#name': 'initech', '#login_domains': 'example' }, field: 'login_domains', text: 'already belongs to tenant' },
    { name: 'Tenant: a duplicate name', url: '/webmanager/tenants/new', fill: { '#name': 'globex' }, field: 'name', text: 'already exists' },
    { name: 'User: passwords differing', url: '/webmanager/users/new?tenant=default', fill: { '#username': 'agent9', '#password': 'password-one-1', '#confirm': 'password-two-2' }, field: 'confirm', text: 'differ', secret: ['#password', '#confirm'] },
    { name: 'User: a duplicate user name', url: '/webmanager/users/new?tenant=default', fill: { '#username': 'AGENT1' }, field: 'username', text: 'already has user' },
    { name: 'User: a Circuit user another user has', url: '/webmanager/users/new?tenant=default', fill: { '#username': 'agent9', '#circuit_user': 'Agent2@Circuit.Example' }, field: 'circuit_user', text: '"agent2"' },
    { name: 'User: a Circuit user that is no e-mail or URI', url: '/webmanager/users/new?tenant=default', fill: { '#username': 'agent9', '#circuit_user': 'not an address' }, field: 'circuit_user', text: 'e-mail address or URI' },
    { name: 'API client: a duplicate name', url: '/webmanager/api-clients/new', fill: { '#name': 'ci' }, field: 'name', text: 'already exists' },
    { name: 'API client: a token too short', url: '/webmanager/api-clients/new', fill: { '#name': 'robot', '#token': 'short-token' }, field: 'token', text: '32' },
  ];
  let n = 0;
  for (const c of cases) {
    n += 1;
    await page.goto(`${a.base}${c.url}`);
    for (const [sel, v] of Object.entries(c.fill)) await page.fill(sel, v);
    for (const [sel, f] of Object.entries(c.files || {})) await page.setInputFiles(sel, f);
    if (c.preview) await Promise.all([page.waitForLoadState('load'), page.click('button[value=preview]')]);
    if (c.preview) await page.fill('#username_mapping', c.fill['#username_mapping']);
    const submit = c.submit || 'main form button:has-text("Save"), main form button:has-text("Add")';
    await Promise.all([page.waitForLoadState('load'), page.locator(submit).first().click()]);
    await page.waitForSelector(c.field ? `#error-${c.field}` : 'p.banner', { timeout: 5000 }).catch(() => null);
    const shown = c.field ? await page.textContent(`#error-${c.field}`).catch(() => null) : await page.textContent('main').catch(() => null);
    check(`${c.name}: the message beside the field`, !!shown && shown.includes(c.text), shown);
    const kept = (c.keep || Object.keys(c.fill)).filter((sel) => !(c.secret || []).includes(sel) && sel !== '#private_key');
    const lost = [];
    for (const sel of kept) {
      const v = await page.inputValue(sel).catch(() => null);
      if (v !== c.fill[sel] && !(v !== null && v.trim() === c.fill[sel].trim())) lost.push(`${sel}=${JSON.stringify(v)}`);
    }
    check(`${c.name}: the input is kept`, lost.length === 0, lost.join(', '));
    for (const sel of c.secret || []) {
      check(`${c.name}: ${sel} is not sent back`, (await page.inputValue(sel)) === '', 'a password came back');
    }
    await shot(page, `bad-${String(n).padStart(2, '0')}`);
  }
  await ctx.close();
}

// Two administrators edit the same IdP: the second save gets 409 naming the first, keeps its
// input, and the first one's change stays.
async function stale(b) {
  const first = await adminPage(b);
  const second = await adminPage(b);
  await first.page.goto(`${a.base}/webmanager/idps/ssp`);
  await second.page.goto(`${a.base}/webmanager/idps/ssp`);
  await first.page.click('summary');
  await second.page.click('summary');
  await first.page.fill('#authn_context', 'urn:first:change');
  await Promise.all([first.page.waitForURL('**/webmanager/idps'), first.page.click('main form button:has-text("Save")')]);
  await second.page.fill('#authn_context', 'urn:second:change');
  const [resp] = await Promise.all([second.page.waitForResponse((r) => r.request().method() === 'POST'), second.page.click('main form button:has-text("Save")')]);
  check('the second save is refused with 409', resp.status() === 409, resp.status());
  const banner = await second.page.textContent('main .banner').catch(() => '');
  check('the refusal names who changed it and when', /changed by user:default\/admin at 20/.test(banner), banner);
  check('the second input is kept', (await second.page.inputValue('#authn_context')) === 'urn:second:change', await second.page.inputValue('#authn_context'));
  await shot(second.page, 'stale-409');
  await first.page.goto(`${a.base}/webmanager/idps/ssp`);
  await first.page.click('summary');
  check('the first change is kept', (await first.page.inputValue('#authn_context')) === 'urn:first:change', await first.page.inputValue('#authn_context'));
  await first.ctx.close();
  await second.ctx.close();
}

await run(a, {
  setup,
  configure,
  login,
  badinput,
  stale,
});
