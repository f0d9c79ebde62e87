#!/usr/bin/env python3
"""End-to-end flows against a running ssogate and the real IdP (SimpleSAMLphp).

Run by tests/e2e_real_idp.rs, which configures ssogate through its CLI, starts the IdP
(tests/real-idp/idp.py) and the server, and then runs this. Every flow goes through the scripted
browser of tests/real-idp/browser.py, so every page is fetched and every form submitted the same
way. Prints PASS/FAIL lines and "N passed, M failed"; exits 1 on a failure.
"""

import argparse
import json
import os
import subprocess
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "real-idp"))
import browser  # noqa: E402  (the harness beside this folder)

ap = argparse.ArgumentParser()
ap.add_argument("--sp", required=True, help="ssogate's host URL")
ap.add_argument("--idp-metadata", required=True)
ap.add_argument("--idp-sso-url", required=True)
ap.add_argument("--idp-slo-url", required=True)
ap.add_argument("--ssogate", required=True, help="the ssogate binary (for CLI changes and the failure log)")
ap.add_argument("--data-dir", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()

os.makedirs(args.out, exist_ok=True)
report = browser.Report()
SP = args.sp.rstrip("/")
SP_ENTITY = SP


def ssogate(*a):
    r = subprocess.run([args.ssogate, *a, "--data-dir", args.data_dir], capture_output=True, text=True, timeout=60)
    report.check(r.returncode == 0, f"ssogate {' '.join(a[:3])} ran", r.stderr.strip())
    return r.stdout


def last_failure():
    out = ssogate("failures", "--limit", "1", "--json")
    lines = [l for l in out.splitlines() if l.strip()]
    return json.loads(lines[0]) if lines else {}


def auth_check(br):
    status, hdrs, _ = br.request("GET", SP + "/auth/check")
    return status, hdrs.get("X-Auth-User"), hdrs.get("X-Auth-Tenant")


def login(br, url, user, password, label, stop_on_response=False):
    return browser.run(br, "GET", url, user=user, password=password, stop_on_response=stop_on_response)


def post_form(br, url, data):
    return br.request("POST", url, data)


def login_then_logout(label):
    """SP-initiated login, then SP-initiated single logout by the portal's sign-out button: a GET
    of /logout only shows that button (it changes nothing), its POST starts the logout."""
    br = browser.Browser()
    flow = login(br, SP + "/login", "agent1", "agent1pass", label)
    kinds = [m["kind"] for m in flow.messages]
    report.check(flow.error is None and flow.final_status == 200 and "Agent One" in (flow.final_body or ""),
                 f"{label}: login ends on the portal page", flow.error or browser.page_text(flow.final_body or ""))
    report.check("AuthnRequest" in kinds and "Response" in kinds, f"{label}: an AuthnRequest and a Response went through the browser ({kinds})")
    status, _, body = br.request("GET", SP + "/logout")
    report.check(status == 200 and 'method="post"' in body, f"{label}: GET /logout shows a sign-out button (HTTP {status})")
    s, u, _ = auth_check(br)
    report.check(s == 200 and u == "agent1", f"{label}: the GET changed nothing (auth/check {s} {u})")
    lflow = browser.run(br, "POST", SP + "/logout", data=[])
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
br = browser.Browser()
flow = login(br, f"{args.idp_sso_url}?spentityid={spentity}", "agent2", "agent2pass", "idp-init")
kinds = [m["kind"] for m in flow.messages]
report.check(flow.error is None and flow.final_status == 200 and "agent2" in (flow.final_body or ""),
             "IdP-initiated login ends on the portal page as agent2", flow.error or browser.page_text(flow.final_body or ""))
report.check("Response" in kinds and "AuthnRequest" not in kinds, f"IdP-initiated: a Response and no AuthnRequest ({kinds})")
s, u, _ = auth_check(br)
report.check(s == 200 and u == "agent2", f"auth/check after IdP-initiated login is 200 agent2 (got {s} {u})")
return_to = urllib.parse.quote(SP + "/signed-out", safe="")
lflow = browser.run(br, "GET", f"{args.idp_slo_url}?ReturnTo={return_to}")
kinds = [m["kind"] for m in lflow.messages]
report.check("LogoutRequest" in kinds and "LogoutResponse" in kinds,
             f"IdP-initiated SLO: the IdP's LogoutRequest reached us and our LogoutResponse went back ({kinds})")
report.check(lflow.final_status == 200 and "Signed out" in (lflow.final_body or ""),
             f"IdP-initiated SLO ends on our signed-out page (HTTP {lflow.final_status})")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check after IdP-initiated SLO is 401 (got {s})")

# 3. /auth/check 401 -> 200 -> 401 across login and logout; SSO reuse without a password.
br = browser.Browser()
s, u, t = auth_check(br)
report.check(s == 401, f"auth/check before login is 401 (got {s})")
flow = login(br, SP + "/", "agent1", "agent1pass", "reuse-first")
report.check(flow.error is None and flow.final_status == 200 and "Agent One" in flow.final_body,
             "first login ends on the portal page", f"{flow.final_status} {browser.page_text(flow.final_body or '')}")
s, u, t = auth_check(br)
report.check(s == 200 and u == "agent1" and t == "default", f"auth/check after login is 200 agent1/default (got {s} {u} {t})")
status, _, body = br.request("GET", SP + "/auth/session")
report.check(status == 200 and json.loads(body).get("user") == "agent1", f"auth/session names agent1 ({status} {body[:120]})")
# Drop only ssogate's session cookie: the IdP's session (its own cookies) lives on.
br.drop_cookie("ssogate_session")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check without our session cookie is 401 (got {s})")
flow = login(br, SP + "/login", None, None, "reuse-second")
report.check(flow.error is None and flow.login_forms == 0 and "Agent One" in (flow.final_body or ""),
             "SSO reuse: signed in again without a password form", flow.error or browser.page_text(flow.final_body or ""))
s, u, _ = auth_check(br)
report.check(s == 200 and u == "agent1", f"auth/check after SSO reuse is 200 agent1 (got {s} {u})")
lflow = browser.run(br, "POST", SP + "/logout", data=[])
kinds = [m["kind"] for m in lflow.messages]
report.check("LogoutRequest" in kinds and "LogoutResponse" in kinds, f"SP-initiated SLO went through the IdP ({kinds})")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check after logout is 401 (got {s})")

# 4. SP-initiated login by the HTTP-POST binding (changed through the CLI while the server runs).
ssogate("idp", "set", "ssp", "--sso-binding", "post")
login_then_logout("sp-init-post")
ssogate("idp", "set", "ssp", "--sso-binding", "redirect")

# 5. An IdP user without an ssogate user: a clear page, and the failure recorded with its reason.
br = browser.Browser()
flow = login(br, SP + "/login", "supervisor1", "supervisor1pass", "unknown-user")
text = browser.page_text(flow.final_body or "", 600)
report.check(flow.final_status == 403 and "no agent account" in text and "supervisor1" in text and "Reference: SG-" in text,
             "unknown user: 403 page that says so, with a reference", f"{flow.final_status} {text}")
f = last_failure()
report.check(f.get("reason") == "unknown_user" and "supervisor1" in f.get("detail", ""), f"failure log: unknown_user ({f})")
s, _, _ = auth_check(br)
report.check(s == 401, f"auth/check after the refused login is 401 (got {s})")

# 6. Replay: an IdP-initiated response, captured, is accepted once and refused the second time.
br = browser.Browser()
flow = login(br, f"{args.idp_sso_url}?spentityid={spentity}", "agent2", "agent2pass", "replay", stop_on_response=True)
if report.check(flow.stopped_at is not None, "captured the SAMLResponse before it reached the ACS", flow.error or ""):
    method, url, data = flow.stopped_at
    s1, h1, _ = post_form(br, url, data)
    report.check(s1 == 303, f"first POST of the response signs in (HTTP {s1})")
    other = browser.Browser()
    s2, _, b2 = post_form(other, url, data)
    report.check(s2 == 403 and "Reference: SG-" in browser.page_text(b2, 600), f"the same response replayed from another browser is refused (HTTP {s2})")
    f = last_failure()
    report.check(f.get("reason") == "replayed", f"failure log: replayed ({f.get('reason')}: {f.get('detail')})")
    s3, _, _ = post_form(br, url, data)
    report.check(s3 == 403, f"the same response replayed in the same browser is refused (HTTP {s3})")
    s, _, _ = auth_check(other)
    report.check(s == 401, f"the replaying browser has no session (auth/check {s})")

# 7. SP-initiated response replayed: its request was consumed by the first use.
br = browser.Browser()
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
