"""Prints a full session token for a demo user: password sign-in, then TOTP
enrolment confirmed with a code from `wardline totp-code`. Used by
`cargo xtask api-fuzz` to run schemathesis as a signed-in user.

usage: session.py BASE_URL CA_FILE WARDLINE_BIN EMAIL PASSWORD
"""
import json
import ssl
import subprocess
import sys
import urllib.request
import uuid

base, cafile, wardline, email, password = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)


def call(method, path, body=None, token=None):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
    )
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.loads(r.read() or b"null")


login = call(
    "POST",
    "/api/v1/auth/login",
    {"org": "demo", "email": email, "password": password, "device_id": str(uuid.uuid4())},
)
token = login["session"]["token"]
secret = call("POST", "/api/v1/auth/totp/enroll", token=token)["secret_base32"]
code = subprocess.check_output([wardline, "totp-code", secret]).decode().strip()
call("POST", "/api/v1/auth/totp/confirm", {"code": code}, token=token)
print(token)
