#!/usr/bin/env python3
"""A small scripted browser for the real-IdP tests: follows redirects, submits the forms a
browser would (SAML auto-post forms, the IdP's login form), keeps cookies, and records every SAML
message that passes through it (kind, binding, destination).

Used as a module by tests/e2e/flows.py, and from the command line by tests/real_idp.rs:

    browser.py login --url URL --user NAME --password PW
        Follows URL, signs in at the IdP, and stops before the SAMLResponse reaches the SP.
        Prints one JSON object: {"saml_response": ..., "relay_state": ..., "action": ...};
        exits 1 (with the reason on stderr) when no SAMLResponse came.

Only the Python standard library is used.
"""

import argparse
import base64
import html
import html.parser
import http.cookiejar
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib

MD = "urn:oasis:names:tc:SAML:2.0:metadata"
DS = "http://www.w3.org/2000/09/xmldsig#"


class Report:
    """PASS/FAIL lines and their counts."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL {what}", flush=True)
            if detail:
                print("     " + str(detail).replace("\n", "\n     ")[:3000], flush=True)
        return ok


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    """Cookies kept, redirects not followed (the caller follows them, to see each step)."""

    def __init__(self, timeout=20):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())
        self.timeout = timeout

    def request(self, method, url, data=None, headers=None):
        body = None
        h = {"User-Agent": "ssogate-test-browser/1.0", "Accept": "text/html,*/*"}
        h.update(headers or {})
        if data is not None:
            body = urllib.parse.urlencode(data).encode()
            h["Content-Type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(url, data=body, method=method, headers=h)
        try:
            resp = self.opener.open(req, timeout=self.timeout)
            status, hdrs, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        except OSError as e:
            return 599, {}, f"connection failed: {e}"
        return status, hdrs, raw.decode(hdrs.get_content_charset() or "utf-8", errors="replace")

    def drop_cookie(self, name):
        for c in list(self.jar):
            if c.name == name:
                self.jar.clear(c.domain, c.path, c.name)


class _Forms(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                               "fields": []})
        elif tag in ("input", "button") and self.forms:
            self.forms[-1]["fields"].append(a)


def page_text(body, n=400):
    """The visible text of a page, shortened."""
    t = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body or "", flags=re.S | re.I)
    t = html.unescape(re.sub(r"<[^>]+>", " ", t))
    return re.sub(r"\s+", " ", t).strip()[:n]


def _saml_kind(xml_bytes):
    try:
        tag = ET.fromstring(xml_bytes).tag
    except ET.ParseError:
        return "unparsable"
    return tag.rsplit("}", 1)[-1]


def decode_message(value, deflated):
    raw = base64.b64decode(value)
    return zlib.decompress(raw, -15) if deflated else raw


class Flow:
    def __init__(self):
        self.messages = []      # {"kind", "via", "url"}
        self.final_status = None
        self.final_url = None
        self.final_body = None
        self.login_forms = 0
        self.stopped_at = None  # (method, url, data) of the SAMLResponse POST not sent
        self.error = None
        self.hops = 0


def _record(flow, method, url, data):
    for k, v in (data or []):
        if k in ("SAMLRequest", "SAMLResponse"):
            flow.messages.append({"kind": _saml_kind(decode_message(v, False)), "via": "post", "url": url})
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    for k in ("SAMLRequest", "SAMLResponse"):
        if k in q:
            flow.messages.append({"kind": _saml_kind(decode_message(q[k][0], True)), "via": "redirect",
                                  "url": url.split("?")[0]})


def _submission(page_url, form, user=None, password=None):
    action = urllib.parse.urljoin(page_url, html.unescape(form["action"]))
    data, filled = [], False
    pwd = next((f for f in form["fields"] if f.get("type") == "password"), None)
    for f in form["fields"]:
        name, typ = f.get("name"), (f.get("type") or "text")
        if not name or typ in ("submit", "button", "image", "reset", "checkbox", "radio"):
            continue
        value = f.get("value") or ""
        if pwd is not None:
            if f is pwd:
                value = password
            elif not filled and typ in ("text", "email"):
                value, filled = user, True
        data.append((name, value))
    if form["method"] == "post":
        return "POST", action, data
    return "GET", action.split("?")[0] + "?" + urllib.parse.urlencode(data), None


def run(br, method, url, data=None, user=None, password=None, stop_on_response=False, max_hops=40):
    """Follows `url` like a browser: redirects, SAML auto-post forms, one login form."""
    flow = Flow()
    while True:
        flow.hops += 1
        if flow.hops > max_hops:
            flow.error = f"more than {max_hops} steps (a redirect loop?)"
            return flow
        if stop_on_response and any(k == "SAMLResponse" for k, _ in (data or [])):
            flow.stopped_at = (method, url, data)
            _record(flow, method, url, data)
            return flow
        _record(flow, method, url, data)
        status, hdrs, body = br.request(method, url, data)
        if status in (301, 302, 303, 307, 308) and hdrs.get("Location"):
            nxt = urllib.parse.urljoin(url, hdrs["Location"])
            if not (status in (307, 308) and method == "POST"):
                method, data = "GET", None
            url = nxt
            continue
        flow.final_status, flow.final_url, flow.final_body = status, url, body
        if "<form" not in body.lower():
            return flow
        p = _Forms()
        p.feed(body)
        saml = next((f for f in p.forms if any(x.get("name") in ("SAMLRequest", "SAMLResponse")
                                               for x in f["fields"])), None)
        login = next((f for f in p.forms if any(x.get("type") == "password" for x in f["fields"])), None)
        if saml is not None:
            method, url, data = _submission(url, saml)
            continue
        if login is not None:
            flow.login_forms += 1
            if user is None:
                flow.error = "a login form, and no user to sign in with"
                return flow
            if flow.login_forms > 1:
                flow.error = "the login form came back (wrong password?): " + page_text(body)
                return flow
            method, url, data = _submission(url, login, user, password)
            continue
        return flow


def read_idp_metadata(path):
    """entity_id, SSO and SLO locations by binding, signing certificates (base64)."""
    root = ET.parse(path).getroot()
    ed = root if root.tag.endswith("EntityDescriptor") else root.find(f".//{{{MD}}}EntityDescriptor")
    idp = ed.find(f"{{{MD}}}IDPSSODescriptor")
    loc = lambda tag: {e.get("Binding"): e.get("Location") for e in idp.findall(f"{{{MD}}}{tag}")}
    certs = [c.text.strip() for c in idp.iter(f"{{{DS}}}X509Certificate") if c.text]
    return {"entity_id": ed.get("entityID"), "sso": loc("SingleSignOnService"),
            "slo": loc("SingleLogoutService"), "certs": certs}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lg = sub.add_parser("login")
    lg.add_argument("--url", required=True)
    lg.add_argument("--user", required=True)
    lg.add_argument("--password", required=True)
    a = ap.parse_args()
    flow = run(Browser(), "GET", a.url, user=a.user, password=a.password, stop_on_response=True)
    if flow.stopped_at is None:
        print(f"no SAMLResponse: {flow.error or ''} (HTTP {flow.final_status} at {flow.final_url}: "
              f"{page_text(flow.final_body or '')})", file=sys.stderr)
        return 1
    _, action, data = flow.stopped_at
    d = dict(data)
    print(json.dumps({"saml_response": d["SAMLResponse"], "relay_state": d.get("RelayState"), "action": action}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
