#!/usr/bin/env python3
"""End-to-end flows against a running ssogate and the real IdP (SimpleSAMLphp).

Run by tests/e2e_real_idp.rs, which configures ssogate through its CLI, starts the IdP and the
server, and then runs this. The single-browser flows go through `drive-login.py browse`; the
flows that need one browser across several steps (SSO reuse, replay, /auth/check transitions)
use drive-login.py's own Browser and run_browser, so every page is fetched and every form
submitted the same way. Prints PASS/FAIL lines and "N passed, M failed"; exits 1 on a failure.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--sp", required=True, help="ssogate's host URL")
ap.add_argument("--drive-login", required=True)
ap.add_argument("--idp-metadata", required=True)
ap.add_argument("--idp-sso-url", required=True)
ap.add_argument("--idp-slo-url", required=True)
ap.add_argument("--ssogate", required=True, help="the ssogate binary (for CLI changes and the failure log)")
ap.add_argument("--data-dir", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()

spec = importlib.util.spec_from_file_location("drive_login", args.drive_login)
dl = importlib.util.module_from_spec(spec)
spec.loader.exec_module(dl)

os.makedirs(args.out, exist_ok=True)
report = dl.Report(os.path.join(args.out, "stateful"))
SP = args.sp.rstrip("/")
SP_ENTITY = SP
idp = dl.read_idp_metadata(args.idp_metadata)
cert = os.path.join(args.out, "idp.crt")
with open(cert, "w") as f:
    f.write(dl.pem_from_b64(idp["certs"][0]))


def ssogate(*a):
    r = subprocess.run([args.ssogate, *a, "--data-dir", args.data_dir], capture_output=True, text=True, timeout=60)
    report.check(r.returncode == 0, f"ssogate {' '.join(a[:3])} ran", r.stderr.strip())
    return r.stdout


def last_failure():
    out = ssogate("failures", "--limit", "1", "--json")
    lines = [l for l in out.splitlines() if l.strip()]
    return json.loads(lines[0]) if lines else {}


def browse(label, *extra):
    """One `drive-login.py browse` run; all its checks must pass."""
    cmd = [sys.executable, args.drive_login, "browse", "--idp-metadata", args.idp_metadata,
           "--out", os.path.join(args.out, label), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    tail = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
    ok = r.returncode == 0 and tail.endswith(" 0 failed")
    report.check(ok, f"browse {label}: {tail}", r.stdout[-3000:] + r.stderr[-2000:])


def auth_check(br):
    status, hdrs, _ = br.request("GET", SP + "/auth/check")
    return status, hdrs.get("X-Auth-User"), hdrs.get("X-Auth-Tenant")


def login(br, url, user, password, label, stop_on_response=False):
    tmp = os.path.join(args.out, "tmp")
    os.makedirs(tmp, exist_ok=True)
    return dl.run_browser(br, report, "GET", url, user=user, password=password, cert=cert, tmpdir=tmp,
                          label=label, stop_on_response=stop_on_response)


def post_form(br, url, data):
    return br.request("POST", url, data)


def login_then_logout(label):
    """SP-initiated login, then SP-initiated single logout by the portal's sign-out button: a GET
    of /logout only shows that button (it changes nothing), its POST starts the logout."""
    br = dl.Browser(report)
    flow = login(br, SP + "/login", "agent1", "agent1pass", label)
    kinds = [m["kind"] for m in flow.messages]
    report.check(flow.error is None and flow.final_status == 200 and "Agent One" in (flow.final_body or ""),
                 f"{label}: login ends on the portal page", flow.error or dl.page_text(flow.final_body or ""))
    report.check("AuthnRequest" in kinds and "Response" in kinds, f"{label}: an AuthnRequest and a Response went through the browser ({kinds})")
    status, _, body = br.request("GET", SP + "/logout")
    report.check(status == 200 and 'method="post"' in body, f"{label}: GET /logout shows a sign-out button (HTTP {status})")
    s, u, _ = auth_check(br)
    report.check(s == 200 and u == "agent1", f"{label}: the GET changed nothing (auth/check {s} {u})")
    lflow = dl.run_browser(br, report, "POST", SP + "/logout", data=[], cert=cert,
                           tmpdir=os.path.join(args.out, "tmp"), label=label + "-logout")
    kinds = [m["kind"] for m in lflow.messages]
    report.check("LogoutRequest" in kinds and "LogoutResponse" in kinds,
                 f"{label}: SP-initiated SLO went through the IdP ({kinds})")
    report.check(lflow.final_status == 200 and "Signed out" in (lflow.final_body or ""),
                 f"{label}: the logout ends on the signed-out page (HTTP {lflow.final_status})")
    s, _, _ = auth_check(br)
    report.check(s == 401, f"{label}: auth/check after logout is 401 (got {s})")
    flow = login(br, SP + "/", None, None, label + "-after")
    report.check(flow.login_forms == 1,
                 f"{label}: after single logout the IdP asks for the password again")


# 1. SP-initiated login (HTTP-Redirect binding), then SP-initiated single logout.
login_then_logout("sp-init-redirect")

# 2. IdP-initiated login, then IdP-initiated single logout (the IdP sends us a LogoutRequest).
spentity = urllib.parse.quote(SP_ENTITY, safe="")
browse("idp-init", "--url", f"{args.idp_sso_url}?spentityid={spentity}", "--user", "agent2", "--password", "agent2pass",
       "--expect-text", "agent2",
       "--logout-url", f"{args.idp_slo_url}?ReturnTo={urllib.parse.quote(SP + '/signed-out', safe='')}",
       "--after-logout-url", SP + "/")

# 3. /auth/check 401 -> 200 -> 401 across login and logout; SSO reuse without a password.
br = dl.Browser(report)
s, u, t = auth_check(br)
report.check(s == 401, f"auth/check before login is 401 (got {s})")
flow = login(br, SP + "/", "agent1", "agent1pass", "reuse-first")
report.check(flow.error is None and flow.final_status == 200 and "Agent One" in flow.final_body,
             "first login ends on the portal page", f"{flow.final_status} {dl.page_text(flow.final_body or '')}")
s, u, t = auth_check(br)
report.check(s == 200 and u == "agent1" and t == "default", f"auth/check after login is 200 agent1/default (got {s} {u} {t})")
status, _, body = br.request("GET", SP + "/auth/session")
report.check(status == 200 and json.loads(body).get("user") == "agent1", f"auth/session names agent1 ({status} {body[:120]})")
# Drop only ssogate's session cookie: the IdP's session (its own cookies) lives on.
for c in list(br.jar):
    if c.name == "ssogate_session":
        br.jar.clear(c.domain, c.path, c.name)
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check without our session cookie is 401 (got {s})")
flow = login(br, SP + "/login", None, None, "reuse-second")
report.check(flow.error is None and flow.login_forms == 0 and "Agent One" in (flow.final_body or ""),
             "SSO reuse: signed in again without a password form", flow.error or dl.page_text(flow.final_body or ""))
s, u, _ = auth_check(br)
report.check(s == 200 and u == "agent1", f"auth/check after SSO reuse is 200 agent1 (got {s} {u})")
lflow = dl.run_browser(br, report, "POST", SP + "/logout", data=[], cert=cert, tmpdir=os.path.join(args.out, "tmp"), label="reuse-logout")
kinds = [m["kind"] for m in lflow.messages]
report.check("LogoutRequest" in kinds and "LogoutResponse" in kinds, f"SP-initiated SLO went through the IdP ({kinds})")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check after logout is 401 (got {s})")

# 4. SP-initiated login by the HTTP-POST binding (changed through the CLI while the server runs).
ssogate("idp", "set", "ssp", "--sso-binding", "post")
login_then_logout("sp-init-post")
ssogate("idp", "set", "ssp", "--sso-binding", "redirect")

# 5. An IdP user without an ssogate user: a clear page, and the failure recorded with its reason.
br = dl.Browser(report)
flow = login(br, SP + "/login", "supervisor1", "supervisor1pass", "unknown-user")
text = dl.page_text(flow.final_body or "", 600)
report.check(flow.final_status == 403 and "no agent account" in text and "supervisor1" in text and "Reference: SG-" in text,
             "unknown user: 403 page that says so, with a reference", f"{flow.final_status} {text}")
f = last_failure()
report.check(f.get("reason") == "unknown_user" and "supervisor1" in f.get("detail", ""), f"failure log: unknown_user ({f})")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check after the refused login is 401 (got {s})")

# 6. Replay: an IdP-initiated response, captured, is accepted once and refused the second time.
br = dl.Browser(report)
flow = login(br, f"{args.idp_sso_url}?spentityid={spentity}", "agent2", "agent2pass", "replay", stop_on_response=True)
if report.check(flow.stopped_at is not None, "captured the SAMLResponse before it reached the ACS", flow.error or ""):
    method, url, data = flow.stopped_at
    s1, h1, _ = post_form(br, url, data)
    report.check(s1 == 303, f"first POST of the response signs in (HTTP {s1})")
    other = dl.Browser(report)
    s2, _, b2 = post_form(other, url, data)
    report.check(s2 == 403 and "Reference: SG-" in dl.page_text(b2, 600), f"the same response replayed from another browser is refused (HTTP {s2})")
    f = last_failure()
    report.check(f.get("reason") == "replayed", f"failure log: replayed ({f.get('reason')}: {f.get('detail')})")
    s3, _, _ = post_form(br, url, data)
    report.check(s3 == 403, f"the same response replayed in the same browser is refused (HTTP {s3})")
    s, _, _ = auth_check(other)
    report.check(s == 401, f"the replaying browser has no session (auth/check {s})")

# 7. SP-initiated response replayed: its request was consumed by the first use.
br = dl.Browser(report)
flow = login(br, SP + "/login", "agent1", "agent1pass", "replay-sp", stop_on_response=True)
if report.check(flow.stopped_at is not None, "captured an SP-initiated SAMLResponse", flow.error or ""):
    method, url, data = flow.stopped_at
    s1, _, _ = post_form(br, url, data)
    s2, _, _ = post_form(br, url, data)
    f = last_failure()
    report.check(s1 == 303 and s2 == 403 and f.get("reason") in ("browser_binding_mismatch", "request_already_answered", "replayed"),
                 f"SP-initiated response: accepted once ({s1}), refused again ({s2}, {f.get('reason')})")

print(f"{report.passed} passed, {report.failed} failed")
sys.exit(1 if report.failed else 0)
