#!/usr/bin/env python3
"""Notify protocol check for a translated program (see notify_prog.c).

Runs EXE MODE once undisturbed, then again: once it printed "ready" and its threads are
blocked where the mode says (read, nanosleep), sends NOTIFY_SIGNAL to every thread, reads the
ResumeRecords from /proc/PID/mem at the addresses hcontainer_abi::layout documents (main
record, thread slots found in /proc/PID/maps) and checks that every thread parked (status
PARKED, tid one of the process's threads) at a migration point: a point listed by
`hcontainer inspect --points`, or a guest `syscall` instruction with rax = orig_rax. Then
sends RESUME_SIGNAL, feeds stdin and checks the output equals the undisturbed run's.

In mode "pingpong" (threads in short blocking reads all the time) the notify/park/resume
cycle is repeated ROUNDS times: a notify that arrives just before a blocking call starts
must still park the thread.

Usage: notify_check.py POINTS_FILE MODE [RUNNER...] EXE

Under qemu-user the signal numbers the program sees are the host's shifted: qemu keeps the
lowest host real-time signals for itself and maps target signal n to host n + 2 (qemu 7.2)
or n + 4 (qemu 11), so the signals sent are shifted by HCT_SIGNAL_OFFSET (default 0).
Prints one "ok: ..." or "FAILED: ..." line per check; exits non-zero on any failure.
"""
import os
import struct
import subprocess
import sys
import time

NOTIFY_SIGNAL = 60
RESUME_SIGNAL = 61
THREAD_RUNNING = 0
THREAD_PARKED = 1
RESUME_MAGIC = struct.unpack("<Q", b"HCRESUME")[0]
STATE_VERSION = 1

RUNTIME_BASE = 0x2000_0000_0000
RUNTIME_SIZE = 0x0100_0000_0000
PAGE = 4096
MAIN_RESUME_RECORD = RUNTIME_BASE + RUNTIME_SIZE - PAGE
THREAD_SLOTS_BASE = RUNTIME_BASE + RUNTIME_SIZE // 2
GUARD = 64 << 10
THREAD_HOST_STACK_SIZE = 64 << 20
THREAD_SLOT_STRIDE = THREAD_HOST_STACK_SIZE + (1 << 20)
THREAD_SLOTS = 4096
THREAD_SLOT_LEN = GUARD + THREAD_HOST_STACK_SIZE

# ResumeRecord: magic, version, brk_start, brk_cur, tid, status, reserved[2], then
# GuestState: gpr[16] (rax first), rip at 128, ..., poll at 592, orig_rax at 600.
STATE = 64
RIP = STATE + 128
POLL = STATE + 592
ORIG_RAX = STATE + 600
RECORD_LEN = STATE + 656

# Host syscall numbers (x86-64 machine; qemu-user issues host calls there too).
HOST_READ = 0
HOST_SLEEPS = (35, 230)  # nanosleep, clock_nanosleep
GUEST_SLEEPS = (35, 230)

TIMEOUT = 20.0
ROUNDS = 10

failures = 0


def ok(msg):
    print(f"ok: {msg}", flush=True)


def bad(msg):
    global failures
    failures += 1
    print(f"FAILED: {msg}", flush=True)


def wait_for(what, cond, timeout=TIMEOUT):
    """Poll cond() every 10 ms up to timeout seconds; returns its last value."""
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > end:
            if not v:
                bad(f"timed out waiting for {what}")
            return v
        time.sleep(0.01)


def slot_record(i):
    return THREAD_SLOTS_BASE + i * THREAD_SLOT_STRIDE + THREAD_SLOT_LEN - PAGE


def record_addrs(pid):
    """The main record and one record per mapping that starts at a thread slot base."""
    addrs = [MAIN_RESUME_RECORD]
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            start = int(line.split("-", 1)[0], 16)
            off = start - THREAD_SLOTS_BASE
            if off >= 0 and off % THREAD_SLOT_STRIDE == 0 and off // THREAD_SLOT_STRIDE < THREAD_SLOTS:
                addrs.append(slot_record(off // THREAD_SLOT_STRIDE))
    return addrs


def read_mem(pid, addr, n):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def records(pid):
    out = []
    for a in record_addrs(pid):
        b = read_mem(pid, a, RECORD_LEN)
        magic, version, brk_start, brk_cur, tid, status = struct.unpack_from("<6Q", b, 0)
        gpr = struct.unpack_from("<16Q", b, STATE)
        (rip,) = struct.unpack_from("<Q", b, RIP)
        poll, orig_rax = struct.unpack_from("<2Q", b, POLL)
        out.append(dict(addr=a, magic=magic, version=version, brk_start=brk_start, brk_cur=brk_cur,
                        tid=tid, status=status, rax=gpr[0], rip=rip, poll=poll, orig_rax=orig_rax))
    return out


def tasks(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def task_syscall(pid, tid):
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            first = f.read().split()[0]
        return int(first) if first.lstrip("-").isdigit() else None
    except OSError:
        return None


def blocked_as_expected(pid, mode):
    calls = [task_syscall(pid, t) for t in tasks(pid)]
    if mode == "threads":
        return HOST_READ in calls and any(c in HOST_SLEEPS for c in calls)
    return HOST_READ in calls


def main():
    global NOTIFY_SIGNAL, RESUME_SIGNAL
    points_file, mode, *cmd = sys.argv[1:]
    shift = int(os.environ.get("HCT_SIGNAL_OFFSET", "0"))
    NOTIFY_SIGNAL += shift
    RESUME_SIGNAL += shift
    with open(points_file) as f:
        points = {int(l, 16) for l in f if l.startswith("0x")}
    if not points:
        bad("no migration points listed")
        return
    want_threads = 1 if mode == "single" else 3
    rounds = ROUNDS if mode == "pingpong" else 1
    feed = b"hello\n"

    base = subprocess.run(cmd + [mode], input=feed, capture_output=True, timeout=120)
    if base.returncode != 0:
        bad(f"{mode}: undisturbed run exited {base.returncode}: {base.stderr.decode(errors='replace')}")
        return

    p = subprocess.Popen(cmd + [mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if p.stdout.readline() != b"ready\n":
            bad(f"{mode}: no ready line")
            return
        pid = p.pid
        if not wait_for(f"{mode}: threads blocked in read/nanosleep", lambda: blocked_as_expected(pid, mode)):
            return
        for n in range(rounds):
            for t in tasks(pid):
                try:
                    tgkill(pid, t, NOTIFY_SIGNAL)
                except ProcessLookupError:
                    pass

            def all_parked():
                rs = records(pid)
                live = [r for r in rs if r["tid"] != 0]
                return rs if len(live) == want_threads and all(r["status"] == THREAD_PARKED for r in live) else None

            rs = wait_for(f"{mode}: {want_threads} threads parked (round {n + 1})", all_parked)
            if not rs:
                for r in records(pid):
                    print(f"  record {r['addr']:#x}: tid {r['tid']} status {r['status']} rip {r['rip']:#x} "
                          f"poll {r['poll']} orig_rax {r['orig_rax']:#x}")
                return
            ok(f"{mode}: round {n + 1}: {len(rs)} records, every thread PARKED")
            ids = set(tasks(pid))
            at_syscall = []
            for r in rs:
                where = f"record {r['addr']:#x} (tid {r['tid']})"
                if r["magic"] != RESUME_MAGIC or r["version"] != STATE_VERSION:
                    bad(f"{mode}: {where}: magic {r['magic']:#x} version {r['version']}")
                if r["tid"] not in ids:
                    bad(f"{mode}: {where}: tid is not a thread of {pid} ({sorted(ids)})")
                if r["poll"] & 1 == 0:
                    bad(f"{mode}: {where}: poll {r['poll']} while parked")
                insn = read_mem(pid, r["rip"], 2)
                if insn == b"\x0f\x05" and r["orig_rax"] == r["rax"] and r["orig_rax"] != 2**64 - 1:
                    at_syscall.append(r["orig_rax"])
                elif r["rip"] in points and r["orig_rax"] == 2**64 - 1:
                    pass
                else:
                    bad(f"{mode}: {where}: rip {r['rip']:#x} (bytes {insn.hex()}, rax {r['rax']:#x}, "
                        f"orig_rax {r['orig_rax']:#x}) is not a migration point")
            main = [r for r in rs if r["addr"] == MAIN_RESUME_RECORD][0]
            if main["brk_start"] == 0 or main["brk_cur"] < main["brk_start"]:
                bad(f"{mode}: main record break {main['brk_start']:#x}..{main['brk_cur']:#x}")
            else:
                ok(f"{mode}: main record carries the program break {main['brk_start']:#x}..{main['brk_cur']:#x}")
            if 0 in at_syscall:
                ok(f"{mode}: thread blocked in read parked at its syscall instruction (rax = orig_rax = 0)")
            else:
                bad(f"{mode}: no thread parked at a read syscall (syscalls: {at_syscall})")
            if mode == "threads":
                if any(c in GUEST_SLEEPS for c in at_syscall):
                    ok(f"{mode}: thread in nanosleep parked at its syscall instruction")
                else:
                    bad(f"{mode}: no thread parked at a sleep syscall (syscalls: {at_syscall})")
            ok(f"{mode}: every parked rip is a migration point ({len(at_syscall)} at syscall instructions)")

            for r in rs:
                try:
                    tgkill(pid, r["tid"], RESUME_SIGNAL)
                except ProcessLookupError:
                    pass
            wait_for(f"{mode}: threads running again",
                     lambda: all(r["status"] == THREAD_RUNNING for r in records(pid) if r["tid"] != 0))
        out, err = p.communicate(feed, timeout=120)
        if p.returncode != 0:
            bad(f"{mode}: notified run exited {p.returncode}: {err.decode(errors='replace')}")
        elif b"ready\n" + out != base.stdout:
            bad(f"{mode}: output differs: {out!r} vs {base.stdout!r}")
        else:
            ok(f"{mode}: resumed run's output equals the undisturbed run's ({len(base.stdout)} bytes)")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def tgkill(pid, tid, sig):
    """tgkill(2) through libc."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(234, pid, tid, sig) != 0:
        err = ctypes.get_errno()
        if err == 3:
            raise ProcessLookupError(tid)
        raise OSError(err, os.strerror(err))


if __name__ == "__main__":
    main()
    sys.exit(1 if failures else 0)
