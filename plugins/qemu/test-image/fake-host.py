#!/usr/bin/env python3
"""A host-side stand-in for the qemu engine's meta-data service (PROTOCOL.md), Python 3 stdlib only.

Serves HTTP/1.1 on a unix socket (qemu's guestfwd runs `socat - UNIX-CONNECT:meta.sock` per guest
connection): /engine/v1/execute, log (chunked, timestamped per chunk; a body ending without its
zero chunk is recorded as a crash), success/failed, poll (actions queued by the test), reply
(JSON, streamed files, `101` upgrades to enginehost-shell frames), and one proxy, /test-proxy/.
Used as a library by smoke-checks.py; standalone it runs one task and prints its log and result:

    fake-host.py SOCKET -- sh -c 'echo hi'
"""

import http.server
import json
import os
import queue
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

POLL_SECONDS = 25
PING_BODY = b"Yay, you managed to ping the end-point, secret=42!!!"


class Shell:
    """The host end of one exec-shell: frames out, stdout/stderr/exit in."""

    def __init__(self):
        self.ready = threading.Event()
        self.done = threading.Event()
        self.stdout, self.stderr, self.exit = bytearray(), bytearray(), None
        self.kinds_seen, self.first_output_at = set(), None
        self.cond = threading.Condition()

    def attach(self, rfile, wfile, conn):
        self.rfile, self.wfile, self.conn, self.wlock = rfile, wfile, conn, threading.Lock()
        self.ready.set()
        while True:  # runs on the handler thread; returns when the agent closes
            head = rfile.read(5)
            if len(head) < 5:
                break
            kind, n = head[0], struct.unpack(">I", head[1:])[0]
            payload = rfile.read(n)
            with self.cond:
                self.kinds_seen.add(kind)
                if kind == 10:
                    self.stdout += payload
                elif kind == 11:
                    self.stderr += payload
                elif kind == 12:
                    self.exit = struct.unpack(">i", payload)[0]
                if kind in (10, 11) and self.first_output_at is None:
                    self.first_output_at = time.monotonic()
                self.cond.notify_all()
        self.done.set()

    def send(self, kind, payload=b""):
        self.ready.wait(30)
        with self.wlock:
            self.wfile.write(bytes([kind]) + struct.pack(">I", len(payload)) + payload)

    def stdin(self, data):
        self.send(0, data.encode() if isinstance(data, str) else data)

    def eof(self):
        self.send(1)

    def resize(self, cols, rows):
        self.send(2, struct.pack(">HH", cols, rows))

    def abort(self):
        self.send(3)

    def hang_up(self):
        """Closes the connection before the exit frame (the agent must take it as an abort)."""
        self.conn.shutdown(socket.SHUT_RDWR)

    def wait_output(self, text, timeout=10):
        with self.cond:
            return self.cond.wait_for(lambda: text.encode() in self.stdout, timeout)

    def wait(self, timeout=30):
        self.done.wait(timeout)
        return bytes(self.stdout), bytes(self.stderr), self.exit


class FakeHost:
    def __init__(self, sock_path, command, env=None):
        self.sock_path, self.task = sock_path, {"command": command, "env": env or {}}
        self.t0 = time.monotonic()
        self.cond = threading.Condition()
        self.execute_at, self.result, self.result_at = None, None, None
        self.log, self.log_chunks, self.log_state = bytearray(), [], None  # None/open/complete/truncated
        self.log_done_at = None
        self.actions, self.replies, self.next_id = queue.Queue(), {}, 0
        self.proxy_requests, self.polls_during_task = [], 0

    def start(self):
        if os.path.exists(self.sock_path):
            os.unlink(self.sock_path)
        host = self

        class Handler(HostHandler):
            fake = host

        self.server = socketserver.ThreadingUnixStreamServer(self.sock_path, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, pred, timeout):
        with self.cond:
            return self.cond.wait_for(pred, timeout)

    def note(self, **fields):
        with self.cond:
            for k, v in fields.items():
                setattr(self, k, v)
            self.cond.notify_all()

    # Actions: queued for the next poll; replies collected by id.
    def action(self, kind, **fields):
        with self.cond:
            self.next_id += 1
            aid = f"a{self.next_id}/{kind}"  # a '/' so the id must be percent-encoded
            self.replies[aid] = {"kind": kind, "done": False, "shell": Shell() if kind == "exec-shell" else None}
        self.actions.put(dict(fields, id=aid, type=kind))
        return aid

    def reply(self, aid, timeout=30):
        self.wait(lambda: self.replies[aid]["done"], timeout)
        return self.replies[aid]

    def shell(self, command=(), tty=False):
        aid = self.action("exec-shell", command=list(command), tty=tty)
        return self.replies[aid]["shell"]


def read_chunked(rfile, on_chunk):
    """Reads a chunked body, calling on_chunk per chunk. Returns True iff the zero chunk came."""
    while True:
        line = rfile.readline(1024)
        if not line.endswith(b"\n"):
            return False
        size = int(line.split(b";")[0].strip() or b"x", 16)
        if size == 0:
            while rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass
            return True
        data = rfile.read(size)
        if len(data) < size:
            return False
        on_chunk(data)
        if rfile.readline(8) not in (b"\r\n", b"\n"):
            return False


class HostHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHost

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body=b"", ctype="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            out = bytearray()
            return bytes(out) if read_chunked(self.rfile, out.extend) else None
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        f, path = self.fake, urllib.parse.urlparse(self.path).path
        if path == "/engine/v1/execute":
            if f.execute_at is None:
                f.note(execute_at=time.monotonic())
            self.answer(200, json.dumps(f.task).encode())
        elif path == "/engine/v1/poll":
            if f.result is None:
                f.polls_during_task += 1
            try:
                act = f.actions.get(timeout=POLL_SECONDS)
            except queue.Empty:
                act = {"type": "none"}
            self.answer(200, json.dumps(act).encode())
        elif path.startswith("/test-proxy/"):
            with f.cond:
                f.proxy_requests.append((self.command, path[len("/test-proxy"):]))
            self.answer(200 if path == "/test-proxy/v1/ping" else 404, PING_BODY, "text/plain")
        else:
            self.answer(404, b"not found", "text/plain")

    def do_PUT(self):
        f, path = self.fake, self.path
        body = self.body()
        if path in ("/engine/v1/success", "/engine/v1/failed"):
            f.note(result=(path.rsplit("/", 1)[1], json.loads(body)), result_at=time.monotonic())
            self.answer(200)
        else:
            self.answer(404)

    def do_POST(self):
        f, url = self.fake, urllib.parse.urlparse(self.path)
        if url.path == "/engine/v1/log":
            f.note(log_state="open")

            def chunk(data):
                with f.cond:
                    f.log += data
                    f.log_chunks.append((time.monotonic(), data))
                    f.cond.notify_all()

            complete = read_chunked(self.rfile, chunk)
            f.note(log_state="complete" if complete else "truncated", log_done_at=time.monotonic())
            self.answer(200) if complete else self.close_now()
        elif url.path == "/engine/v1/reply":
            aid = urllib.parse.parse_qs(url.query).get("id", [""])[0]
            rec = f.replies.get(aid)
            if rec is None:
                return self.answer(404)
            if self.headers.get("Upgrade") == "enginehost-shell":
                self.send_response(101)
                self.send_header("Connection", "Upgrade")
                self.send_header("Upgrade", "enginehost-shell")
                self.end_headers()
                self.wfile.flush()
                rec["shell"].attach(self.rfile, self.wfile, self.connection)
                f.note()
                with f.cond:
                    rec["done"] = True
                    f.cond.notify_all()
                return self.close_now()
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "")
            body = self.body()
            with f.cond:
                rec.update(done=True, body=body, chunked=chunked, error=self.headers.get("X-Enginehost-Error"))
                f.cond.notify_all()
            self.answer(200)
        else:
            self.answer(404)

    def close_now(self):
        self.close_connection = True


def main(argv):
    if len(argv) < 3 or argv[1] != "--":
        sys.exit(__doc__)
    host = FakeHost(argv[0], argv[2:]).start()
    print(f"serving {argv[0]}; waiting for the task", file=sys.stderr)
    shown = 0
    while not host.wait(lambda: host.result is not None and host.log_state != "open", 1):
        with host.cond:
            sys.stdout.buffer.write(host.log[shown:])
            shown = len(host.log)
        sys.stdout.flush()
    sys.stdout.buffer.write(host.log[shown:])
    print(f"\nresult: {host.result}, log {host.log_state}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
