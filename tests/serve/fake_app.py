"""A stand-in for a served Textual app: it speaks textual-serve's pipe protocol.

It announces itself, sends one screen of data (``ready pid=<pid>``), then echoes what it
is sent. Told to quit, it exits, unless started with ``--stubborn``, when it ignores the
request and SIGTERM (the server must kill it). ``--child`` starts a detached grandchild
(its own session, like a lab's background server) whose pid it reports, so a test can see
it reaped. ``--env FILE`` writes its environment to FILE.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys


def packet(kind: bytes, payload: bytes) -> None:
    sys.stdout.buffer.write(kind + len(payload).to_bytes(4, "big") + payload)
    sys.stdout.buffer.flush()


def main() -> None:
    args = sys.argv[1:]
    stubborn = "--stubborn" in args
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if "--env" in args:
        with open(args[args.index("--env") + 1], "w", encoding="utf-8") as fh:
            json.dump(dict(os.environ), fh)
    child = ""
    if "--child" in args:
        proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
        child = f" child={proc.pid}"
    sys.stdout.buffer.write(b"__GANGLION__\n")
    packet(b"D", f"ready pid={os.getpid()}{child}".encode())
    stdin = sys.stdin.buffer
    while True:
        head = stdin.read(5)
        if len(head) < 5:
            return
        payload = stdin.read(int.from_bytes(head[1:], "big"))
        if head[:1] == b"D":
            packet(b"D", b"echo:" + payload)
        elif head[:1] == b"M" and json.loads(payload).get("type") == "quit" and not stubborn:
            packet(b"M", json.dumps({"type": "exit"}).encode())
            return


if __name__ == "__main__":
    main()
