#!/usr/bin/env python3
"""Flows across three ssogate instances behind nginx, on one PostgreSQL database, with the real
IdP (SimpleSAMLphp).

Run by tests/cluster.rs, which starts PostgreSQL's database, the instances, nginx and the IdP,
and configures ssogate through its CLI. Every flow goes through the scripted browser of
tests/real-idp/browser.py. Prints PASS/FAIL lines and "N passed, M failed"; exits 1 on a failure.
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "real-idp"))
import browser  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--public", required=True, help="nginx: the one public URL")
ap.add_argument("--instance", action="append", required=True, help="an instance's own URL")
ap.add_argument("--idp-sso-url", required=True)
ap.add_argument("--idp-slo-url", required=True)
ap.add_argument("--ssogate", required=True)
ap.add_argument("--config", required=True)
ap.add_argument("--victim-pid", type=int, required=True, help="instance A's process: killed in the last flow")
args = ap.parse_args()

report = browser.Report()
PUBLIC = args.public.rstrip("/")
INSTANCES = [u.rstrip("/") for u in args.instance]
A, B, C = INSTANCES[:3]


def ssogate(*a):
    r = subprocess.run([args.ssogate, *a, "--config", args.config], capture_output=True, text=True, timeout=60)
    report.check(r.returncode == 0, f"ssogate {' '.join(a[:3])} ran", r.stderr.strip())
    return r.stdout


def auth_check(br, base):
    status, hdrs, _ = br.request("GET", base + "/auth/check")
    return status, hdrs.get("X-Auth-User")


def failures(n):
    out = ssogate("failures", "--limit", str(n), "--json")
    return [json.loads(l) for l in out.splitlines() if l.strip()]


# 1. An AuthnRequest issued by instance A completes on instance B; the session answers on C and
#    through nginx.
br = browser.Browser()
flow = browser.run(br, "GET", A + "/login", user="agent1", password="agent1pass", stop_on_response=True)
kinds = [m["kind"] for m in flow.messages]
if report.check(flow.stopped_at is not None and "AuthnRequest" in kinds,
                f"A issued an AuthnRequest and the IdP answered ({kinds})", flow.error or browser.page_text(flow.final_body or "")):
    _, action, data = flow.stopped_at
    report.check(action.startswith(PUBLIC + "/"), f"the IdP posts to the public URL ({action})")
    acs_b = B + urllib.parse.urlsplit(action).path
    s, h, body = br.request("POST", acs_b, data)
    report.check(s == 303, f"B's ACS accepts the response to A's request (HTTP {s})", browser.page_text(body))
    for name, base in (("A", A), ("B", B), ("C", C), ("nginx", PUBLIC)):
        s, u = auth_check(br, base)
        report.check(s == 200 and u == "agent1", f"auth/check on {name}: 200 agent1 (got {s} {u})")
    s, _, body = br.request("GET", PUBLIC + "/app/")
    report.check(s == 200 and "agent portal app" in body, f"nginx auth_request lets the session through (HTTP {s})")
    s, _, _ = browser.Browser().request("GET", PUBLIC + "/app/")
    report.check(s == 401, f"nginx auth_request stops a browser without a session (HTTP {s})")

# 2. SSO reuse across instances: our session cookie dropped, the IdP's kept: signed in again on
#    another instance without a password form.
br.drop_cookie("ssogate_session")
s, _ = auth_check(br, C)
report.check(s == 401, f"without our session cookie auth/check is 401 (got {s})")
flow = browser.run(br, "GET", C + "/login")
report.check(flow.error is None and flow.login_forms == 0 and flow.final_status == 200,
             "SSO reuse through C and nginx: no password form", flow.error or browser.page_text(flow.final_body or ""))
s, u = auth_check(br, A)
report.check(s == 200 and u == "agent1", f"the reused login answers on A (got {s} {u})")

# 3. IdP-initiated single logout arriving at one instance ends the session on all.
spentity = urllib.parse.quote(PUBLIC, safe="")
br = browser.Browser()
flow = browser.run(br, "GET", f"{args.idp_sso_url}?spentityid={spentity}", user="agent2", password="agent2pass")
report.check(flow.error is None and flow.final_status == 200, "IdP-initiated login through nginx",
             flow.error or browser.page_text(flow.final_body or ""))
for name, base in (("A", A), ("B", B), ("C", C)):
    s, u = auth_check(br, base)
    report.check(s == 200 and u == "agent2", f"agent2's session answers on {name} (got {s} {u})")
cookie = next((c.value for c in br.jar if c.name == "ssogate_session"), None)
report.check(cookie is not None, "the browser holds agent2's session cookie")
return_to = urllib.parse.quote(PUBLIC + "/signed-out", safe="")
lflow = browser.run(br, "GET", f"{args.idp_slo_url}?ReturnTo={return_to}")
kinds = [m["kind"] for m in lflow.messages]
report.check("LogoutRequest" in kinds and "LogoutResponse" in kinds,
             f"the IdP's LogoutRequest reached an instance, our LogoutResponse went back ({kinds})")
for name, base in (("A", A), ("B", B), ("C", C)):
    # Asked with the cookie the browser had before the logout: each instance must find the
    # session gone from the store, whatever the logout did to the browser's cookies.
    s, _, _ = browser.Browser().request("GET", base + "/auth/check", headers={"Cookie": f"ssogate_session={cookie}"})
    report.check(s == 401, f"after IdP-initiated SLO auth/check on {name} with the old cookie is 401 (got {s})")

# 4. `ssogate tenant set` is in force on every instance within 1 s: the login page turns from a
#    redirect to the IdP (SSO on) into the password form (SSO off).
def sso_on(base):
    s, h, _ = browser.Browser().request("GET", base + "/login")
    return s in (302, 303) and "SAMLRequest" in (h.get("Location") or "")

report.check(all(sso_on(b) for b in INSTANCES), "SSO is on everywhere before the change")


def in_force_within_1s(label, want_on):
    """After a change, every request sent to any instance from 1 s on must see it. Until then,
    when each instance was first seen serving it (sent time of the request that saw it)."""
    t0 = time.monotonic()
    first = {}
    while time.monotonic() - t0 < 1.0 and len(first) < len(INSTANCES):
        for b in INSTANCES:
            if b not in first:
                sent = time.monotonic() - t0
                if sso_on(b) == want_on:
                    first[b] = sent
        time.sleep(0.01)
    time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    late = [b for b in INSTANCES if sso_on(b) != want_on]
    seen = ", ".join(f"{first[b]:.3f} s" if b in first else "-" for b in INSTANCES)
    report.check(not late, f"{label}: in force on all {len(INSTANCES)} instances 1 s after the CLI returned (first seen at {seen})",
                 f"not yet on {late}")


ssogate("tenant", "set", "default", "--sso", "off", "--slo", "off", "--idp-initiated", "off")
in_force_within_1s("SSO off", False)
ssogate("tenant", "set", "default", "--sso", "on", "--slo", "on", "--idp-initiated", "on")
in_force_within_1s("SSO back on", True)

# 5. One signed assertion POSTed 50 times at once across the instances: one session, 49 refusals.
br = browser.Browser()
flow = browser.run(br, "GET", f"{args.idp_sso_url}?spentityid={spentity}", user="agent2", password="agent2pass",
                   stop_on_response=True)
if report.check(flow.stopped_at is not None, "captured an IdP-initiated SAMLResponse", flow.error or ""):
    _, action, data = flow.stopped_at
    path = urllib.parse.urlsplit(action).path

    def post(i):
        b = browser.Browser()
        s, h, _ = b.request("POST", INSTANCES[i % len(INSTANCES)] + path, data)
        ok = s == 303 and auth_check(b, INSTANCES[(i + 1) % len(INSTANCES)])[0] == 200
        return s, ok

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as ex:
        results = list(ex.map(post, range(50)))
    statuses = [s for s, _ in results]
    sessions = sum(1 for _, ok in results if ok)
    report.check(statuses.count(303) == 1 and statuses.count(403) == 49 and sessions == 1,
                 f"50 concurrent POSTs: {statuses.count(303)} accepted, {statuses.count(403)} refused, {sessions} session")
    reasons = [f.get("reason") for f in failures(60)]
    report.check(reasons.count("replayed") >= 1, f"the refusals are recorded as replayed ({reasons.count('replayed')} records)")

# 6. Instance A SIGKILLed while logins it started wait at the IdP: they finish on the others
#    (the pending request travels in the browser), and nginx keeps serving.
import signal  # noqa: E402

waiting = []
for user in ("agent1", "agent2"):
    b = browser.Browser()
    f = browser.run(b, "GET", A + "/login", user=user, password=f"{user}pass", stop_on_response=True)
    if report.check(f.stopped_at is not None, f"{user}: a login started on A waits with its SAMLResponse", f.error or ""):
        waiting.append((user, b, f.stopped_at))
# Load through nginx while A dies: a signed-in browser asking /auth/check without pause.
import threading  # noqa: E402

steady = browser.Browser()
f = browser.run(steady, "GET", PUBLIC + "/login", user="agent1", password="agent1pass")
report.check(f.final_status == 200, "a browser signed in through nginx for the load", f.error or "")
loading, statuses = True, []

def keep_asking():
    while loading:
        statuses.append(auth_check(steady, PUBLIC)[0])

loader = threading.Thread(target=keep_asking)
loader.start()
time.sleep(0.5)
os.kill(args.victim_pid, signal.SIGKILL)
time.sleep(1.0)
loading = False
loader.join()
report.check(len(statuses) > 20 and all(x == 200 for x in statuses),
             f"{len(statuses)} auth/checks through nginx while A was killed: all 200 ({sorted(set(statuses))})")
s, _, _ = browser.Browser().request("GET", A + "/healthz")
report.check(s == 599, f"A is gone (GET /healthz: {s})")
for user, b, (_, action, data) in waiting:
    s, _, body = b.request("POST", action, data)
    report.check(s == 303, f"{user}: the response to A's request completes through nginx on another instance (HTTP {s})",
                 browser.page_text(body))
    answers = [auth_check(b, PUBLIC) for _ in range(12)]
    report.check(all(a == (200, user) for a in answers), f"{user}: 12 auth/checks through nginx after the kill all 200 ({answers[:3]}…)")

print(f"{report.passed} passed, {report.failed} failed")
sys.exit(1 if report.failed else 0)
