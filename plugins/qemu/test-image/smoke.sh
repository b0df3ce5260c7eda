#!/usr/bin/env bash
# smoke.sh [OUTDIR]: end-to-end check of the guest agent and the test image. Builds the image
# (build.sh OUTDIR, default $TMPDIR/enginehost-qemu-image), then boots it under qemu (TCG, the
# engine's flags) once per scenario of smoke-checks.py (main, kill, crash), each against the
# fake-host.py stand-in on SANDBOX/meta.sock. Leaves nothing running: qemu is killed by pid, and
# the socat children slirp spawns (setsid, reparented to PID 1) are found by their cwd (the
# sandbox) and killed by pid. Prints "N passed, M failed" over all checks; exit 1 on a failure.
#
# Needs (Debian): qemu-system-x86 socat python3, plus what build.sh needs. On bookworm with the
# preinstalled backports qemu-utils, install qemu from bookworm-backports (see PROTOCOL.md).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$(realpath -m "${1:-${TMPDIR:-/tmp}/enginehost-qemu-image}")
SCENARIOS=${SCENARIOS:-main kill crash}

bash "$HERE/build.sh" "$OUT"
APPEND=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["boot"]["append"])' "$OUT/machine.json")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/enginehost-smoke.XXXXXX")
SANDBOX=
QEMU_PID= # the subshell that runs qemu; qemu itself writes SANDBOX/qemu.pid

# Processes whose cwd is inside $WORK: our qemu and the socat helpers it spawned.
ours() {
    local p cwd
    for p in /proc/[0-9]*; do
        cwd=$(readlink "$p/cwd" 2>/dev/null) || continue
        case $cwd in "$WORK"/*) echo "${p#/proc/}" ;; esac
    done
}

stop_qemu() {
    if [ -n "$QEMU_PID" ]; then
        if [ -s "$SANDBOX/qemu.pid" ]; then
            kill "$(cat "$SANDBOX/qemu.pid")" 2>/dev/null || true
        else
            kill "$QEMU_PID" 2>/dev/null || true
        fi
        wait "$QEMU_PID" 2>/dev/null || true
        QEMU_PID=
    fi
    local left i
    for i in $(seq 20); do # socat children exit on EOF once qemu is gone
        left=$(ours)
        [ -z "$left" ] && return 0
        sleep 0.1
    done
    echo "smoke: still running after qemu stopped, killing: $(ps -o pid=,args= -p "${left//$'\n'/,}" | tr '\n' ';')" >&2
    kill -9 $left 2>/dev/null || true
}

cleanup() {
    stop_qemu
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_scenario() {
    local scenario=$1 sb=$WORK/$1 rc=0
    SANDBOX=$sb
    mkdir -p "$sb"
    python3 -c 'import time; print(time.monotonic())' >"$sb/qemu.t0"
    (
        cd "$sb"
        qemu-system-x86_64 -pidfile qemu.pid -accel tcg -M pc -cpu max -m 256 -smp 1 -nodefaults -no-user-config -no-reboot \
            -display none -device VGA -vnc unix:vnc.sock,share=force-shared -qmp unix:qmp.sock,server=on,wait=off \
            -serial file:serial.log \
            -netdev "user,id=n0,restrict=on,net=169.254.0.0/16,guestfwd=tcp:169.254.169.254:80-cmd:socat - UNIX-CONNECT:meta.sock" \
            -device virtio-net-pci,netdev=n0 -kernel "$OUT/vmlinux" -initrd "$OUT/initrd.img" -append "$APPEND" || echo "qemu exited with $?"
    ) >"$sb/qemu.log" 2>&1 &
    QEMU_PID=$!
    echo "== $scenario"
    timeout 150 python3 "$HERE/smoke-checks.py" "$scenario" "$sb" | tee -a "$WORK/checks.txt" || rc=$?
    stop_qemu
    if [ $rc -ne 0 ]; then
        echo "-- serial.log:" && tail -n 30 "$sb/serial.log" && echo "-- qemu.log:" && tail -n 10 "$sb/qemu.log"
    fi
    return $rc
}

failed=0
start=$(date +%s)
for s in $SCENARIOS; do
    run_scenario "$s" || failed=1
done
[ -z "$(ours)" ] && echo "smoke: nothing left running" || { echo "smoke: processes left running" >&2; failed=1; }
passed=$(grep -c '^ok ' "$WORK/checks.txt" || true)
fails=$(grep -c '^FAIL' "$WORK/checks.txt" || true)
[ $failed -ne 0 ] && [ "$fails" -eq 0 ] && fails=1 # a scenario died without saying why
echo "smoke: $(($(date +%s) - start)) s for $SCENARIOS"
echo "$passed passed, $fails failed"
exit $failed
