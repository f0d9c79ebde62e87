#!/usr/bin/env python3
"""A real SAML 2.0 IdP for the tests: Debian's SimpleSAMLphp 1.19 under PHP's built-in server,
on loopback, trusting the SPs whose metadata is given.

    idp.py start --workdir DIR --port PORT [--host localhost] SP-METADATA.xml [...]
        Writes the configuration (from config/ beside this file) and a fresh RSA-2048 key into
        DIR, starts the server in the background and waits until its metadata answers. Prints one
        JSON object (also in DIR/idp.json): metadata_file, entity_id, sso_url, slo_url, pid.
    idp.py stop --workdir DIR
        Stops the server started in DIR (only if that PID is still our `php -S`).
    idp.py check
        Exits 0 when PHP, SimpleSAMLphp and openssl are installed; otherwise names the packages.

The users (config/authsources.php): agent1/agent1pass, agent2/agent2pass,
supervisor1/supervisor1pass, with windowsaccountname EXAMPLE\\<login>.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SSP = "/usr/share/simplesamlphp"
PACKAGES = "simplesamlphp php-cli php-xml php-mbstring php-curl openssl"


def missing():
    """What is not installed, as a sentence, or None."""
    gone = []
    if shutil.which("php") is None:
        gone.append("php")
    if not os.path.exists(os.path.join(SSP, "lib", "_autoload.php")):
        gone.append("simplesamlphp")
    if shutil.which("openssl") is None:
        gone.append("openssl")
    if not gone:
        return None
    return f"{', '.join(gone)} not installed (apt-get install {PACKAGES})"


def php_quote(s):
    return s.replace("\\", "\\\\").replace("'", "\\'")


def render(name, dest, values):
    with open(os.path.join(HERE, "config", name)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("{{" + k + "}}", php_quote(v))
    with open(dest, "w") as f:
        f.write(text)


def start(a):
    why = missing()
    if why:
        sys.exit(f"idp.py: {why}")
    w = os.path.abspath(a.workdir)
    stop_pid(w)
    for d in ("config", "metadata", "cert", "log", "data", "tmp", "sessions", "docroot"):
        os.makedirs(os.path.join(w, d), exist_ok=True)
    link = os.path.join(w, "docroot", "simplesaml")
    if not os.path.islink(link):
        os.symlink(os.path.join(SSP, "www"), link)
    # The host name in its URLs (it listens on 127.0.0.1 either way): `localhost` makes it the
    # same site as an SP on localhost, as an IdP and SP of one domain are.
    base = f"http://{a.host}:{a.port}/simplesaml/"
    metadata_url = base + "saml2/idp/metadata.php"
    values = {"BASEURL": base, "WORKDIR": w, "SECRETSALT": secrets.token_hex(24), "ENTITYID": metadata_url}
    render("config.php", os.path.join(w, "config", "config.php"), values)
    render("authsources.php", os.path.join(w, "config", "authsources.php"), values)
    render("saml20-idp-hosted.php", os.path.join(w, "metadata", "saml20-idp-hosted.php"), values)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "30",
                    "-subj", "/CN=ssogate test IdP", "-keyout", os.path.join(w, "cert", "idp.key"),
                    "-out", os.path.join(w, "cert", "idp.crt")], check=True, capture_output=True)
    remote = subprocess.run(["php", os.path.join(HERE, "config", "sp-remote.php"), *a.sp_metadata],
                            check=True, capture_output=True, text=True).stdout
    with open(os.path.join(w, "metadata", "saml20-sp-remote.php"), "w") as f:
        f.write(remote)
    env = dict(os.environ, SIMPLESAMLPHP_CONFIG_DIR=os.path.join(w, "config"))
    log = open(os.path.join(w, "server.log"), "ab")
    p = subprocess.Popen(["php", "-d", "session.save_path=" + os.path.join(w, "sessions"),
                          "-d", "date.timezone=UTC", "-S", f"127.0.0.1:{a.port}", "-t", os.path.join(w, "docroot")],
                         env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(w, "idp.pid"), "w") as f:
        f.write(str(p.pid))
    md_file = os.path.join(w, "idp-metadata.xml")
    deadline = time.time() + 20
    while True:
        if p.poll() is not None:
            sys.exit(f"idp.py: php -S exited at start-up (see {w}/server.log)")
        try:
            with urllib.request.urlopen(metadata_url, timeout=2) as r:
                body = r.read()
            if b"EntityDescriptor" in body:
                break
        except OSError:
            pass
        if time.time() > deadline:
            stop_pid(w)
            sys.exit(f"idp.py: no metadata at {metadata_url} within 20 s (see {w}/server.log)")
        time.sleep(0.1)
    with open(md_file, "wb") as f:
        f.write(body)
    info = {"metadata_file": md_file, "entity_id": metadata_url, "sso_url": base + "saml2/idp/SSOService.php",
            "slo_url": base + "saml2/idp/SingleLogoutService.php", "pid": p.pid,
            "cert_file": os.path.join(w, "cert", "idp.crt")}
    with open(os.path.join(w, "idp.json"), "w") as f:
        json.dump(info, f)
    print(json.dumps(info))


def stop_pid(w):
    pid_file = os.path.join(w, "idp.pid")
    try:
        pid = int(open(pid_file).read().strip())
    except (OSError, ValueError):
        return
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ")
        if b"php" in cmd and b" -S " in cmd:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.1)
    except OSError:
        pass
    os.remove(pid_file)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start")
    s.add_argument("--workdir", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    s.add_argument("sp_metadata", nargs="+")
    t = sub.add_parser("stop")
    t.add_argument("--workdir", required=True)
    sub.add_parser("check")
    a = ap.parse_args()
    if a.cmd == "start":
        start(a)
    elif a.cmd == "stop":
        stop_pid(os.path.abspath(a.workdir))
    else:
        why = missing()
        if why:
            print(why)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
