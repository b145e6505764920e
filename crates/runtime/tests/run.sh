#!/usr/bin/env bash
# Build the runtime for each host ISA, link it with the stand-in for translated code
# (fake_guest.rs) and run the result natively or under qemu-user, checking its output and
# exit status. Prints "N passed, M failed" and exits non-zero on any failure.
#   crates/runtime/tests/run.sh [TARGET...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
rt=$(dirname "$here")
sysroot=$(rustc --print sysroot)
lld="$sysroot/lib/rustlib/x86_64-unknown-linux-gnu/bin/rust-lld"
out="$rt/target/tests"
mkdir -p "$out"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(x86_64-unknown-none aarch64-unknown-none riscv64gc-unknown-none-elf)
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }

# Pure parts (syscall table vs kernel headers, structure conversions) on the build host.
if (cd "$rt/host-tests" && cargo test -q --target-dir "$rt/target") > "$out/host-tests.log" 2>&1; then
  ok "host unit tests ($(grep -o '[0-9]* passed' "$out/host-tests.log" | awk '{n += $1} END {print n}') tests)"
else
  bad "host unit tests"; cat "$out/host-tests.log"
fi

data="$out/data.bin"
head -c 12345 /dev/zero > "$data"

# The start-up stack as Linux builds it for a static x86-64 executable (no randomization).
musl-gcc -static -O1 -o "$out/layout-native" "$here/layout_native.c" || bad "build layout_native.c"
mkdir -p "$out/lay"
cp "$out/layout-native" "$out/lay/prog"
native_layout=$(cd "$out/lay" && env -i HCTEST=env-value setarch -R ./prog "$data" 12345 exit)

for t in "${targets[@]}"; do
  # Bounded: a hang fails its check instead of blocking the run.
  case $t in
    x86_64*) runner=(timeout 120) ;;
    aarch64*) runner=(timeout 120 qemu-aarch64) ;;
    riscv64*) runner=(timeout 120 qemu-riscv64) ;;
  esac
  if ! (cd "$rt" && cargo build --release --target "$t" -q); then
    bad "$t: cargo build"; continue
  fi
  abi=$(ls -t "$rt/target/$t/release/deps/"libhcontainer_abi-*.rlib | head -n1)
  obj="$out/fake-$t.o"
  exe="$out/test-$t"
  if ! rustc --edition 2021 --crate-type lib --emit obj -C panic=abort -C opt-level=2 \
      --target "$t" -L "dependency=$rt/target/$t/release/deps" \
      --extern "hcontainer_abi=$abi" -o "$obj" "$here/fake_guest.rs"; then
    bad "$t: compile fake guest"; continue
  fi
  if ! "$lld" -flavor gnu -static -nostdlib --gc-sections -T "$here/link.ld" -o "$exe" \
      "$obj" "$rt/target/$t/release/libhcontainer_runtime.a"; then
    bad "$t: link"; continue
  fi
  ok "$t: built $(stat -c %s "$exe") bytes"

  # Phase 1 checks, then exit_group(3) in phase 2.
  log="$out/run-$t"
  HCTEST=env-value HCONTAINER_WARN_SYSCALLS=1 "${runner[@]}" "$exe" "$data" 12345 exit \
    > "$log.out" 2> "$log.err"
  st=$?
  [ $st -eq 3 ] && ok "$t: exit status 3" || bad "$t: exit status $st (want 3)"
  n_ok=$(grep -c '^ok ' "$log.out")
  if grep -q '^FAIL' "$log.out"; then
    bad "$t: guest checks: $(grep '^FAIL' "$log.out" | tr '\n' ';')"
  elif [ "$n_ok" -lt 60 ]; then
    bad "$t: only $n_ok guest checks ran"; cat "$log.out" "$log.err"
  else
    ok "$t: $n_ok guest checks"
  fi
  grep -qx "argv1=$data" "$log.out" && ok "$t: argv string" || bad "$t: argv string"
  grep -qx 'phase2' "$log.out" && ok "$t: dispatch to second resume point" || bad "$t: no phase2"
  grep -qx 'hcontainer: unsupported syscall 500 (unknown)' "$log.err" \
    && grep -qx 'hcontainer: unsupported syscall 154 (modify_ldt)' "$log.err" \
    && [ "$(grep -c 'syscall 500' "$log.err")" -eq 1 ] \
    && ok "$t: unsupported-syscall warnings" || bad "$t: warnings: $(cat "$log.err")"
  HCTEST=env-value "${runner[@]}" "$exe" "$data" 12345 exit > /dev/null 2> "$log.err2"
  [ ! -s "$log.err2" ] && ok "$t: no warnings without HCONTAINER_WARN_SYSCALLS" \
    || bad "$t: unexpected stderr: $(cat "$log.err2")"

  # Same string layout as Linux: same path, arguments and environment.
  cp "$exe" "$out/lay/prog"
  layout=$(cd "$out/lay" && env -i HCTEST=env-value "${runner[@]}" ./prog "$data" 12345 exit | grep '^layout')
  if [ -n "$native_layout" ] && [ "$layout" = "$native_layout" ]; then
    ok "$t: start-up stack strings laid out as by Linux ($(echo "$layout" | wc -l) items)"
  else
    bad "$t: start-up stack layout differs from Linux:"; diff <(echo "$native_layout") <(echo "$layout")
  fi

  # Untranslated jump: message and SIGSEGV.
  # (the braces keep the shell's own "Segmentation fault" notice out of the log)
  st=$( { "${runner[@]}" "$exe" "$data" 12345 jump > /dev/null 2> "$log.err"; echo $?; } 2> /dev/null )
  grep -qx 'hcontainer: guest jumped to 0xdead0000 which was not translated' "$log.err" \
    && [ $st -eq 139 ] && ok "$t: untranslated jump (status $st)" \
    || bad "$t: untranslated jump: status $st, $(cat "$log.err")"

  # Unsupported instruction: message and SIGILL.
  st=$( { "${runner[@]}" "$exe" "$data" 12345 ud > /dev/null 2> "$log.err"; echo $?; } 2> /dev/null )
  grep -qx 'hcontainer: unsupported instruction at 0x401100: ud2 (0f 0b)' "$log.err" \
    && [ $st -eq 132 ] && ok "$t: unsupported instruction (status $st)" \
    || bad "$t: unsupported instruction: status $st, $(cat "$log.err")"

  # Undefined helper: reported as an unsupported instruction.
  st=$( { "${runner[@]}" "$exe" "$data" 12345 helper > /dev/null 2> "$log.err"; echo $?; } 2> /dev/null )
  grep -qx 'hcontainer: unsupported instruction at 0x401100: helper 999 (op 0x7) is not defined' "$log.err" \
    && [ $st -eq 132 ] && ok "$t: undefined helper (status $st)" \
    || bad "$t: undefined helper: status $st, $(cat "$log.err")"
done
# Notify protocol on real translations (notify_prog.c, static glibc and musl; threads blocked
# in read and nanosleep, or bouncing bytes through pipes over ten notify rounds): every thread
# parks at a migration point on NOTIFY_SIGNAL, records readable at the documented addresses,
# RESUME_SIGNAL lets the program finish as if undisturbed (notify_check.py). Uses the
# workspace's hcontainer (built here if needed, so it embeds this runtime).
root=$(cd "$rt/../.." && pwd)
hc="$root/target/release/hcontainer"
nt="$out/notify"
mkdir -p "$nt"
if ! (cd "$root" && cargo build --release -q -p hcontainer-cli > "$out/hcontainer-build.log" 2>&1); then
  echo "note: cargo build -p hcontainer-cli failed (see $out/hcontainer-build.log); using the existing $hc"
fi
if [ ! -x "$hc" ]; then
  bad "notify: no $hc"
elif ! musl-gcc -static -O2 -o "$nt/prog-musl" "$here/notify_prog.c" \
    || ! gcc -static -O2 -pthread -o "$nt/prog-glibc" "$here/notify_prog.c"; then
  bad "notify: build notify_prog.c"
else
  for t in "${targets[@]}"; do
    case $t in
      x86_64*) isa=x86_64; runner=(); runs="glibc:threads glibc:single glibc:pingpong musl:threads musl:single musl:pingpong" ;;
      aarch64*) isa=aarch64; runner=(qemu-aarch64); runs="musl:threads glibc:single glibc:pingpong" ;;
      riscv64*) isa=riscv64; runner=(qemu-riscv64); runs="glibc:threads musl:single musl:pingpong" ;;
    esac
    # qemu-user shifts real-time signal numbers: target n is host n + 2 in qemu 7.x.
    offset=0
    if [ ${#runner[@]} -gt 0 ]; then
      major=$("${runner[0]}" --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p' | head -n1)
      if [ "$major" != 7 ]; then
        bad "notify $isa: unknown real-time signal mapping of ${runner[0]} version $major"; continue
      fi
      offset=2
    fi
    for run in $runs; do
      libc=${run%%:*}; mode=${run##*:}
      exe="$nt/prog-$libc.$isa"
      if [ ! -x "$exe" ] || [ "$exe" -ot "$hc" ]; then
        "$hc" translate -q -t "$isa" -o "$exe" "$nt/prog-$libc" || { bad "notify: translate $libc for $isa"; continue; }
        "$hc" inspect --points "$exe" > "$exe.points" || { bad "notify: inspect $exe"; continue; }
      fi
      if HCT_SIGNAL_OFFSET=$offset python3 "$here/notify_check.py" "$exe.points" "$mode" "${runner[@]}" "$exe" \
          > "$nt/$libc-$mode-$isa.log" 2>&1; then
        ok "notify $isa $libc $mode: $(grep -c '^ok' "$nt/$libc-$mode-$isa.log") checks"
      else
        bad "notify $isa $libc $mode:"; cat "$nt/$libc-$mode-$isa.log"
      fi
    done
  done
fi

# Guest signal delivery (signal_prog.c: handlers with siginfo, masks, pause, sigsuspend,
# SA_RESTART, SA_RESETHAND, SIGCHLD, an alternate stack): translated output equals native.
sg="$out/signals"
mkdir -p "$sg"
if [ ! -x "$hc" ]; then
  bad "signals: no $hc"
elif ! musl-gcc -static -O2 -o "$sg/sig-musl" "$here/signal_prog.c" \
    || ! gcc -static -O2 -o "$sg/sig-glibc" "$here/signal_prog.c"; then
  bad "signals: build signal_prog.c"
else
  for libc in glibc musl; do
    "$sg/sig-$libc" > "$sg/native-$libc.out" 2>&1 || bad "signals: native $libc run"
  done
  for t in "${targets[@]}"; do
    case $t in
      x86_64*) isa=x86_64; runner=() ;;
      aarch64*) isa=aarch64; runner=(qemu-aarch64) ;;
      riscv64*) isa=riscv64; runner=(qemu-riscv64) ;;
    esac
    for libc in glibc musl; do
      exe="$sg/sig-$libc.$isa"
      if [ ! -x "$exe" ] || [ "$exe" -ot "$hc" ]; then
        "$hc" translate -q -t "$isa" -o "$exe" "$sg/sig-$libc" || { bad "signals: translate $libc for $isa"; continue; }
      fi
      timeout 60 "${runner[@]}" "$exe" > "$sg/$libc-$isa.out" 2>&1
      st=$?
      if [ $st -eq 0 ] && cmp -s "$sg/native-$libc.out" "$sg/$libc-$isa.out"; then
        ok "signals $isa $libc: output equals native ($(wc -l < "$sg/$libc-$isa.out") lines)"
      else
        bad "signals $isa $libc: status $st"; diff "$sg/native-$libc.out" "$sg/$libc-$isa.out"
      fi
    done
  done
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
