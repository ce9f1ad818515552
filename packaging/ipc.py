#!/usr/bin/env python3
"""A tiny client of the monitor's local socket for package-test.sh (standard library only).

    ipc.py SOCKET info | settings | has-secret ACCOUNT | set-secret ACCOUNT VALUE
    ipc.py SOCKET set ATTR JSON_VALUE        # GetSettings, settings[ATTR] = value, SaveSettings

Prints the reply's data as JSON; exits 1 with the monitor's error (kind and message) on an
error reply.
The protocol is the one in src-tauri/src/ipc/protocol.rs: newline-delimited JSON, a Hello,
then {"id": n, "type": ...} requests answered by {"reply": {"id": n, "result": ...}}.
"""

import json
import socket
import sys

# Must equal PROTOCOL_VERSION in protocol.rs: the monitor refuses any other version.
PROTOCOL = 2


class Conn:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self.next_id = 0
        self.send({"protocol": PROTOCOL, "client": "package-test"})
        line = self.recv()
        if "welcome" not in line:
            sys.exit(f"no welcome: {line}")

    def send(self, obj):
        self.file.write(json.dumps(obj).encode() + b"\n")
        self.file.flush()

    def recv(self):
        line = self.file.readline()
        if not line:
            sys.exit("the monitor closed the connection")
        return json.loads(line)

    def request(self, kind, **fields):
        self.next_id += 1
        self.send({"id": self.next_id, "type": kind, **fields})
        while True:
            line = self.recv()
            reply = line.get("reply")
            if reply and reply.get("id") == self.next_id:
                break
        result = reply["result"]
        if "Err" in result:
            err = result["Err"]
            sys.exit(f"error reply ({err.get('kind')}): {err.get('message')}")
        return result["Ok"].get("data")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    conn = Conn(sys.argv[1])
    cmd, args = sys.argv[2], sys.argv[3:]
    if cmd == "info":
        out = conn.request("info")
    elif cmd == "settings":
        out = conn.request("get_settings")
    elif cmd == "set" and len(args) == 2:
        settings = conn.request("get_settings")
        settings[args[0]] = json.loads(args[1])
        out = conn.request("save_settings", settings=settings)
    elif cmd == "has-secret" and len(args) == 1:
        out = conn.request("has_secret", key={"kind": "element_api_key", "account": args[0]})
    elif cmd == "set-secret" and len(args) == 2:
        out = conn.request(
            "set_secret", key={"kind": "element_api_key", "account": args[0]}, value=args[1]
        )
    else:
        sys.exit(__doc__)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
