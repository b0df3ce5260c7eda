#!/usr/bin/env python3
"""smoke-checks.py SCENARIO SANDBOX: the checks smoke.sh runs against one booting VM.

SANDBOX is qemu's cwd (meta.sock is served there); SANDBOX/qemu.t0 (monotonic spawn time, from
`python3 -c 'import time; print(time.monotonic())'`) is written by smoke.sh, SANDBOX/qemu.pid by qemu.
Scenarios (one VM each): main (execute, live log, env, http-get, result, list-folder,
get-artifact, exec-shell with and without tty, resize, abort, concurrency), kill (a host that
listens late, kill-process with the SIGKILL escalation, shells killed too), crash (qemu SIGKILLed
mid-log: the log body ends without its zero chunk). Prints one line per check; exit 1 on failure.
"""

import hashlib
import importlib.util
import json
import os
import re
import signal
import sys
import time

spec = importlib.util.spec_from_file_location("fake_host", os.path.join(os.path.dirname(__file__), "fake-host.py"))
fake_host = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fake_host)

failures = []


def check(name, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + str(detail) if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def lines_at(host, word):
    """Host arrival time of the chunk holding each line containing `word`."""
    return [t for t, data in host.log_chunks for line in data.decode(errors="replace").splitlines() if word in line]


MAIN_TASK = r"""
echo "env: HOME=$HOME USER=$USER PATH=$PATH PWD=$(pwd) HELLO_WORLD=$HELLO_WORLD"
mkdir -p folder/c && for f in folder/a.txt folder/b.txt folder/c/c.txt; do echo 'Hello World' > $f; done
head -c 3000000 /dev/urandom > big.bin && echo "big: $(sha256sum big.bin | cut -d' ' -f1)"
enginehost-agent http-get http://taskcluster/test-proxy/v1/ping; echo " ping=$?"
enginehost-agent http-get http://taskcluster/test-proxy/v1/missing; echo " missing=$?"
(sleep 0.2 &)
sleep 100 &
for i in 1 2 3; do echo tick $i; sleep 1; done
echo "zombies=$(ps -o stat | grep -c '^Z')"
exit 3
"""


def scenario_main(host, t0):
    check("execute reached", host.wait(lambda: host.execute_at, 60))
    print(f"     boot to GET execute: {host.execute_at - t0:.2f} s")
    # While the task runs: a list-folder already works, and a shell's echo round trip.
    host.wait(lambda: b"tick 1" in host.log, 30)
    r = host.reply(host.action("list-folder", path="/home/tc/folder/"), 10)
    check("list-folder while the task runs", host.result is None and len(json.loads(r["body"])["files"]) == 3)
    sh = host.shell(["sh", "-c", "cat"])
    sh.ready.wait(10)
    t = time.monotonic()
    sh.stdin("ping\n")
    sh.wait_output("ping\n", 5)
    print(f"     shell echo round trip: {(time.monotonic() - t) * 1000:.1f} ms")
    sh.eof()
    check("shell during the task", sh.wait(10) == (b"ping\n", b"", 0))

    check("result", host.wait(lambda: host.result, 30), host.result)
    check("failed with exitCode 3", host.result == ("failed", {"exitCode": 3}))
    check("log complete before the result", host.log_state == "complete" and host.log_done_at <= host.result_at)
    log = host.log.decode(errors="replace")
    check("env", "env: HOME=/home/tc USER=root PATH=/bin:/sbin:/usr/bin:/usr/sbin PWD=/home/tc HELLO_WORLD=hello" in log)
    ticks = [lines_at(host, f"tick {i}")[0] for i in (1, 2, 3)]
    gaps = [round(b - a, 3) for a, b in zip(ticks, ticks[1:])]
    check("live log: ticks ~1 s apart", all(0.8 < g < 1.3 for g in gaps), f"gaps {gaps}")
    check("result soon after the last tick (background job killed)", host.result_at - ticks[2] < 1.6,
          f"{host.result_at - ticks[2]:.2f} s")
    check("orphans reaped (agent is a subreaper)", "zombies=0" in log)
    check("http-get 200", fake_host.PING_BODY.decode() + " ping=0" in log)
    check("http-get 404", re.search(re.escape(fake_host.PING_BODY.decode()) + r"http-get: \S+: HTTP 404\n missing=1", log))
    check("proxy saw GET /v1/ping", ("GET", "/v1/ping") in host.proxy_requests, host.proxy_requests)

    folder = "/home/tc/folder"
    want = [f"{folder}/a.txt", f"{folder}/b.txt", f"{folder}/c/c.txt"]
    ids = {p: host.action("list-folder", path=p) for p in (folder + "/", "folder", "/home/tc/nope/", f"{folder}/a.txt")}
    got = {p: json.loads(host.reply(i)["body"]) for p, i in ids.items()}
    check("list-folder nested", got[folder + "/"] == {"files": want, "notFound": False}, got[folder + "/"])
    check("list-folder relative", got["folder"]["files"] == want)
    check("list-folder missing", got["/home/tc/nope/"] == {"files": [], "notFound": True})
    check("list-folder on a file", got[f"{folder}/a.txt"]["notFound"] is True)

    paths = [f"{folder}/a.txt", "/home/tc/missing.txt", folder, "big.bin"]
    ids = [host.action("get-artifact", path=p) for p in paths]  # all at once
    a, missing, directory, big = [host.reply(i) for i in ids]
    check("get-artifact", a["body"] == b"Hello World\n" and a["chunked"] and a["error"] is None)
    check("get-artifact missing", missing["error"] == "file-not-found" and missing["body"] == b"")
    check("get-artifact directory", directory["error"] == "file-not-found" and directory["body"] == b"")
    want_sha = re.search(r"big: ([0-9a-f]{64})", log).group(1)
    check("get-artifact 3 MB streamed", hashlib.sha256(big["body"]).hexdigest() == want_sha, len(big["body"]))

    # Shells: the conformance strings, concurrently; a bad command; tty with resize; abort.
    s1, s2, s3 = host.shell(), host.shell(), host.shell(["sh"])
    s1.stdin("echo '[hello-world]'; (>&2 echo '[hello-error]');")
    s1.eof()
    s2.stdin("exit 1;\n")
    s2.eof()
    s3.stdin("pwd; echo $HELLO_WORLD $HOME; exec 2>&1; ls /nonexistent")
    s3.eof()
    check("shell command", s1.wait() == (b"[hello-world]\n", b"[hello-error]\n", 0), s1.wait())
    check("shell bad command", s2.wait()[2] == 1, s2.wait())
    out3 = s3.wait()
    check("shell env and cwd", out3[0].startswith(b"/home/tc\nhello /home/tc\n") and out3[2] == 1, out3)

    t = host.shell(["/bin/sh"], tty=True)
    t.resize(100, 30)
    t.stdin("stty size; tty; exit 7\n")
    out, err, code = t.wait()
    check("tty shell: resize seen by stty size", b"30 100" in out, out)
    check("tty shell: a pty, no stderr frames, exit code", b"/dev/pts/" in out and 11 not in t.kinds_seen and code == 7,
          (code, t.kinds_seen))

    ab = host.shell(["sh", "-c", "echo started; sleep 30"])
    ab.wait_output("started")
    t = time.monotonic()
    ab.abort()
    out = ab.wait(10)
    check("shell abort", out[2] == -signal.SIGKILL, f"{out}, {time.monotonic() - t:.2f} s")
    hung = host.shell(["sh", "-c", "echo up; exec sleep 31"])
    hung.wait_output("up")
    hung.hang_up()
    time.sleep(0.5)
    ps = host.shell(["ps"])
    ps.eof()
    out = ps.wait()
    check("host hang-up kills the shell", out[2] == 0 and b"sleep 31" not in out[0], out[0][-200:])
    nf = host.shell(["/no/such/command"])
    out = nf.wait()
    check("shell command not found", out[2] == 127 and b"cannot run" in out[1], out)
    check("polls served while the task ran", host.polls_during_task > 0, host.polls_during_task)


def scenario_kill(host, t0):
    check("execute reached (host listened 3 s late)", host.wait(lambda: host.execute_at, 60))
    print(f"     boot to GET execute (retried): {host.execute_at - t0:.2f} s")
    sh = host.shell(["sh", "-c", "echo shell-up; sleep 30"])
    check("shell up", sh.wait_output("shell-up", 20))
    check("kill-now in the log", host.wait(lambda: b"kill-now" in host.log, 20))
    t = time.monotonic()
    r = host.reply(host.action("kill-process"), 10)
    check("kill-process replied (empty)", r["done"] and r["body"] == b"", f"{time.monotonic() - t:.2f} s")
    out = sh.wait(10)
    check("shell killed by SIGTERM", out[2] == -signal.SIGTERM, out)
    check("result", host.wait(lambda: host.result, 20), host.result)
    took = host.result_at - t
    check("task ignoring SIGTERM got SIGKILL after 5 s", host.result == ("failed", {"signal": 9}) and 4.5 < took < 7,
          f"{host.result}, {took:.2f} s")
    check("no output after the kill", b"survived" not in host.log and host.log_state == "complete")


def scenario_crash(host, t0, sandbox):
    check("before-crash in the log", host.wait(lambda: b"before-crash" in host.log, 60))
    os.kill(int(open(os.path.join(sandbox, "qemu.pid")).read()), signal.SIGKILL)
    check("log ends without its zero chunk", host.wait(lambda: host.log_state == "truncated", 10), host.log_state)
    check("no result", host.result is None)


def main(scenario, sandbox):
    t0 = float(open(os.path.join(sandbox, "qemu.t0")).read())
    sock = os.path.join(sandbox, "meta.sock")
    env = {"HELLO_WORLD": "hello"}
    if scenario == "main":
        host = fake_host.FakeHost(sock, ["sh", "-c", MAIN_TASK], env).start()
        scenario_main(host, t0)
    elif scenario == "kill":
        time.sleep(max(0, t0 + 3 - time.monotonic()))
        host = fake_host.FakeHost(sock, ["sh", "-c", 'trap "" TERM; echo kill-now; sleep 30; echo survived'], env).start()
        scenario_kill(host, t0)
    elif scenario == "crash":
        host = fake_host.FakeHost(sock, ["sh", "-c", "echo before-crash; sleep 30"], env).start()
        scenario_crash(host, t0, sandbox)
    else:
        sys.exit(__doc__)
    host.stop()
    print(f"{scenario}: {'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
