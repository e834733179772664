#!/usr/bin/env python3
"""gen_seeds.py: writes the seed corpora of fuzz_token, fuzz_dest, fuzz_json and fuzz_conf
into tests/fuzz/corpus/NAME/ (run once; the output is checked in). Seeds are named by
what they exercise; the token seeds are signed with fuzz_token.c's fixed key."""
import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = b"fuzz-key-fuzz-key-fuzz-key-fuzz!"
KID = "k0123456789abcdef"
NOW = 1800000000
JTI = "0123456789abcdef0123456789abcdef"


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(header, payload, key=KEY):
    signing = b64(header.encode()) + "." + b64(payload.encode())
    mac = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return "cbt_" + signing + "." + b64(mac)


def claims(**kw):
    c = {"iss": "credbroker", "aud": "credproxy", "sub": "sbx-42", "jti": JTI,
         "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600}
    c.update(kw)
    return json.dumps({k: v for k, v in c.items() if v is not None}, separators=(",", ":"))


HDR = json.dumps({"alg": "HS256", "typ": "JWT", "kid": KID}, separators=(",", ":"))

# fuzz_token: "c" + raw token, or "header\npayload" signed by the target.
write("token", "valid", "c" + token(HDR, claims()))
write("token", "valid_notyp", "c" + token('{"alg":"HS256","kid":"%s"}' % KID, claims()))
write("token", "expired", "c" + token(HDR, claims(exp=NOW - 1)))
write("token", "other_key", "c" + token(HDR, claims(), key=b"x" * 32))
write("token", "alg_none", "c" + token('{"alg":"none","kid":"%s"}' % KID, claims()).rsplit(".", 1)[0] + ".")
write("token", "unknown_kid", "c" + token('{"alg":"HS256","kid":"k00000000000000ff"}', claims()))
write("token", "forge_valid", HDR + "\n" + claims())
write("token", "forge_exp_string", HDR + "\n" + claims(exp=str(NOW + 600)))
write("token", "forge_nbf_float", HDR + "\n" + claims(nbf=NOW + 0.5))
write("token", "forge_no_sub", HDR + "\n" + claims(sub=None))
write("token", "forge_hs256_lower", '{"alg":"hs256","kid":"%s"}' % KID + "\n" + claims())
write("token", "forge_extra_header", '{"alg":"HS256","kid":"%s","jku":"x"}' % KID + "\n" + claims())
write("token", "forge_dup", HDR + "\n" + claims()[:-1] + ',"sub":"sbx-43"}')
write("token", "forge_not_yet", HDR + "\n" + claims(nbf=NOW + 60, iat=NOW + 60))

# fuzz_dest: "host\nprefix\npath".
for i, (h, p, q) in enumerate([
        ("api.github.com", "/repos/acme/", "/repos/acme/x"),
        ("API.GitHub.COM.", "/repos/acme", "/repos/acme?x=1"),
        ("127.0.0.1", "/repos/acme/", "/repos/acme-evil/"),
        ("::1", "/", "/repos/acme/../x"),
        ("2001:db8::1", "/a/", "/a/%2e%2e/x"),
        ("xn--bcher-kva.example", "/a", "/a%2Fb"),
        ("a..b", "/a/", "//x"),
        ("0x7f.0.0.1", "/a/", "/x%00"),
        ("GET", "/repos/acme/", "/repos/acme/..;/x"),
        ("host", "/p%3A/", "/p%3a/%7euser/?q=%2F#frag"),
        ("host", "/x\\y", "/x\\y"),
        ("host", "/a/", "/a/%252e%252e/"),
]):
    write("dest", "case%02d" % i, "%s\n%s\n%s" % (h, p, q))

# fuzz_json: request bodies.
bodies = {
    "mint": {"sandbox_id": "sbx-42", "ttl_s": 600, "max_uses": None, "bindings": [
        {"secret": "github", "host": "api.github.com", "port": 443, "methods": ["GET", "POST"],
         "path_prefix": "/repos/acme/", "header": "Authorization",
         "template": "Bearer {secret}", "inject": False}]},
    "resolve": {"token": "cbt_x.y.z", "sandbox_id": "sbx-42", "host": "api.github.com",
                "port": 443, "method": "POST", "path": "/repos/acme/x/issues"},
    "secret": {"value": "s3cr3t", "hosts": ["api.github.com"], "max_ttl_s": 3600},
}
for name, b in bodies.items():
    write("json", name, json.dumps(b))
write("json", "dup", '{"a":1,"a":2}')
write("json", "dup_nested", '{"a":{"b":1,"b":2}}')
write("json", "deep", '{"a":' + "[" * 9 + "]" * 9 + "}")
write("json", "nul", '{"sandbox_id":"a\\u0000b"}')
write("json", "huge", '{"ttl_s":99999999999999999999999}')
write("json", "float", '{"ttl_s":600.0}')
write("json", "array", "[1,2]")
write("json", "unicode", '{"sandbox_id":"\\ud83d\\ude00\\u00e9"}')

# fuzz_conf: credbrokerd.conf.
write("conf", "dev", """# credbrokerd.conf
listen 127.0.0.1:8443
database credbroker.db
master_key master.key
tls_cert pki/server.pem
tls_key pki/server.key
client_ca pki/ca.pem
identity spiffe://credbroker/harness role harness max_ttl 3600 secrets *
identity spiffe://credbroker/proxy role proxy
identity spiffe://credbroker/admin role admin
""")
write("conf", "full", """
   \t \n
listen [::1]:9443   # trailing comment\r
database "/var/lib/cb/my db.sqlite"
master_key /etc/cb/master.key
tls_cert\tserver.pem
tls_key server.key
client_ca ../ca.pem
user credbroker
max_body 1024
threads 8
conn_timeout 10
conn_limit 100
per_ip_limit 7
purge_interval 60
purge_batch 50
log_level debug
identity spiffe://x/harness role harness max_ttl 600 secrets github,openai
identity spiffe://x/h2 role harness secrets * max_ttl 3600
identity spiffe://x/h3 role harness
identity spiffe://x/proxy role proxy
identity "admin cn" role admin""")
write("conf", "errors", """listen 127.0.0.1:99999
database a.db
database b.db
identity h1 role harness max_ttl 600 secrets github,openai
identity h1 role proxy
identity p role proxy max_ttl 5
"unterminated
""")
