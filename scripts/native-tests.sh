#!/usr/bin/env bash
# Builds the C kernel test drivers (native/test/kernels_test.c: inference operators; native/test/train_test.c:
# the fp32 training kernels) for every target and runs them:
#   gcc     native x86-64, gcc -O2
#   asan    clang -fsanitize=address,undefined -fno-sanitize-recover=all
#   tsan    clang -fsanitize=thread (the thread pool and the operators' per-thread scratch)
#   aarch64 aarch64-linux-gnu-gcc -static, under qemu-aarch64-static -cpu max (NEON + dot product) and
#           -cpu cortex-a53 (NEON without dot product: detection must choose the plain NEON kernels)
#   armv7   arm-linux-gnueabihf-gcc -static (base VFP, NEON only in *__neon.c), under qemu-arm-static
# Each run prints "N passed, M failed" last; this script fails when any build or run fails, and ends with a
# summary line per run. Objects are kept in build/native-test/ so a second run only rebuilds what changed.
# Usage: scripts/native-tests.sh [gcc|asan|tsan|aarch64|armv7 ...]   (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."

OUT=build/native-test
MAKE=(make -s -f native/test/Makefile -j2)
targets=("$@")
((${#targets[@]})) || targets=(gcc asan tsan aarch64 armv7)

status=0
summary=()

need() {
  if ! command -v "$1" >/dev/null; then
    echo "native-tests: $1 is missing (install the Debian package $2; scripts/setup.sh lists it)" >&2
    summary+=("$3: SKIPPED, $1 missing")
    status=1
    return 1
  fi
}

# run <label> <command...>: runs a test binary, keeps its last line for the summary.
run() {
  local label=$1
  shift
  local log
  log=$(mktemp)
  local started=$SECONDS
  "$@" >"$log" 2>&1
  local rc=$?
  grep -E '^(FAIL|     at)' "$log" | head -40
  local last
  last=$(tail -n 1 "$log")
  if ((rc != 0)); then
    tail -n 20 "$log"
    status=1
  fi
  summary+=("$label: $last ($((SECONDS - started)) s, exit $rc)")
  rm -f "$log"
}

# refused <label> <command...>: forcing a path the CPU lacks must be reported (exit 1 with a message naming
# WHITTLE_ISA), not crash and not silently run another path.
refused() {
  local label=$1
  shift
  local output rc
  output=$("$@" 2>&1)
  rc=$?
  if ((rc == 1)) && grep -q 'is not supported by this CPU' <<<"$output"; then
    summary+=("$label: refused as expected")
  else
    echo "$output" | tail -n 5
    summary+=("$label: NOT REFUSED (exit $rc)")
    status=1
  fi
}

build() {
  local label=$1
  shift
  if ! "${MAKE[@]}" "$@"; then
    summary+=("$label: BUILD FAILED")
    status=1
    return 1
  fi
}

for target in "${targets[@]}"; do
  case "$target" in
    gcc)
      need gcc build-essential gcc &&
        build gcc OUT=$OUT/gcc CC=gcc ARCH=x86_64 CFLAGS=-O2 &&
        run "x86-64 gcc -O2" $OUT/gcc/kernels_test &&
        run "x86-64 gcc -O2, WHITTLE_ISA=avx2 only" env WHITTLE_ISA=avx2 $OUT/gcc/kernels_test &&
        run "x86-64 gcc -O2 training kernels" $OUT/gcc/train_test &&
        run "x86-64 gcc -O2 training kernels, WHITTLE_ISA=avx2 only" env WHITTLE_ISA=avx2 $OUT/gcc/train_test &&
        refused "x86-64 WHITTLE_ISA=neon" env WHITTLE_ISA=neon $OUT/gcc/kernels_test
      ;;
    asan)
      if need clang clang asan; then
        resource_dir=$(clang -print-resource-dir)
        if ! ls "$resource_dir"/lib/linux/libclang_rt.asan*-x86_64.a >/dev/null 2>&1; then
          echo "native-tests: clang's sanitizer runtime is missing (install libclang-rt-$(clang -dumpversion | cut -d. -f1)-dev)" >&2
          summary+=("asan: SKIPPED, clang sanitizer runtime missing")
          status=1
        else
          san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
          build asan OUT=$OUT/asan CC=clang ARCH=x86_64 "CFLAGS=-O1 -g $san" "LDFLAGS=$san" &&
            ASAN_OPTIONS=detect_leaks=1 run "x86-64 clang ASan+UBSan" $OUT/asan/kernels_test &&
            ASAN_OPTIONS=detect_leaks=1 run "x86-64 clang ASan+UBSan training kernels" $OUT/asan/train_test
        fi
      fi
      ;;
    tsan)
      need clang clang tsan &&
        build tsan OUT=$OUT/tsan CC=clang ARCH=x86_64 "CFLAGS=-O1 -g -fsanitize=thread" LDFLAGS=-fsanitize=thread &&
        TSAN_OPTIONS=halt_on_error=1 run "x86-64 clang TSan" $OUT/tsan/kernels_test &&
        TSAN_OPTIONS=halt_on_error=1 run "x86-64 clang TSan training kernels" $OUT/tsan/train_test
      ;;
    aarch64)
      need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu aarch64 && need qemu-aarch64-static qemu-user-static aarch64 &&
        build aarch64 OUT=$OUT/aarch64 CC=aarch64-linux-gnu-gcc ARCH=aarch64 CFLAGS=-O2 LDFLAGS=-static && {
        run "aarch64 qemu -cpu max (neondot)" qemu-aarch64-static -cpu max $OUT/aarch64/kernels_test
        run "aarch64 qemu -cpu cortex-a53 (neon, no dot)" qemu-aarch64-static -cpu cortex-a53 $OUT/aarch64/kernels_test
        run "aarch64 qemu -cpu max training kernels" qemu-aarch64-static -cpu max $OUT/aarch64/train_test
        refused "aarch64 cortex-a53 WHITTLE_ISA=neondot" env WHITTLE_ISA=neondot qemu-aarch64-static -cpu cortex-a53 \
          $OUT/aarch64/kernels_test
      }
      ;;
    armv7)
      need arm-linux-gnueabihf-gcc gcc-arm-linux-gnueabihf armv7 && need qemu-arm-static qemu-user-static armv7 &&
        build armv7 OUT=$OUT/armv7 CC=arm-linux-gnueabihf-gcc ARCH=armv7 CFLAGS=-O2 LDFLAGS=-static &&
        run "armv7 qemu (neon)" qemu-arm-static -cpu cortex-a15 $OUT/armv7/kernels_test &&
        run "armv7 qemu (neon) training kernels" qemu-arm-static -cpu cortex-a15 $OUT/armv7/train_test
      ;;
    *)
      echo "native-tests: unknown target $target (use gcc, asan, tsan, aarch64, armv7)" >&2
      exit 2
      ;;
  esac
done

echo "== native kernel tests"
printf '  %s\n' "${summary[@]}"
exit $status
