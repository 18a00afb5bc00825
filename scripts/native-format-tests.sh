#!/usr/bin/env bash
# Builds the compressed-format kernels (native/src/{qf,bin,xnor,tern,sparse,cb,hashed}_*.c) with their C test
# driver native/test/formats_test.c and runs it in every configuration the devices need:
#   native   gcc -O2, every x86 path this CPU supports (scalar, AVX2, AVX-512, VPOPCNTDQ)
#   sanitize clang -fsanitize=address,undefined, same paths
#   aarch64  aarch64-linux-gnu-gcc -static under qemu-aarch64-static, -cpu max (NEON + dot product) and
#            -cpu cortex-a53 (NEON only: the neondot kernels must be skipped by detection)
#   armv7    arm-linux-gnueabihf-gcc -mfloat-abi=hard -static (VFP base, -mfpu=neon on *__neon.c only)
#            under qemu-arm-static
# ISA flags apply only to that ISA's files (name suffix __avx2, __avx512, __avx512vpopcnt, __neon,
# __neondot), as in the addon, so the base objects run on any CPU of the architecture.
# Usage: scripts/native-format-tests.sh [native|sanitize|aarch64|armv7]...   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

configs=("$@")
((${#configs[@]})) || configs=(native sanitize aarch64 armv7)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

shopt -s nullglob
kernel_sources=()
for family in qf bin xnor tern sparse cb hashed; do
  kernel_sources+=(native/src/"${family}"_*.c)
done
# Shared by the kernels (sparse_qs8 uses the gemmlowp requantization) and the driver (ISA detection).
support_sources=(native/src/qs8_requantize_gemmlowp.c native/src/cpu/cpu-features.c)
driver=native/test/formats_test.c

# Flags per ISA file suffix, as the addon build applies them: the base files get none, so they run on any
# CPU of the architecture (ARMv7 base is VFP only; only *__neon.c files get -mfpu=neon there).
isa_flags() {
  local arch=$1 src=$2
  case "$arch:$src" in
    x86:*__avx2.c) echo "-mavx2 -mfma -mpopcnt" ;;
    x86:*__avx512.c) echo "-mavx2 -mfma -mpopcnt -mavx512f -mavx512bw -mavx512vl" ;;
    x86:*__avx512vpopcnt.c) echo "-mavx2 -mfma -mpopcnt -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vbmi" ;;
    aarch64:*__neondot.c) echo "-march=armv8.2-a+dotprod" ;;
    armv7:*__neon.c) echo "-mfpu=neon" ;;
    *) echo "" ;;
  esac
}

# build NAME ARCH(x86|aarch64|armv7) CC FLAGS... : compiles two files at a time, links $out/NAME/formats_test.
build() {
  local name=$1 arch=$2 cc=$3
  shift 3
  local dir="$out/$name"
  mkdir -p "$dir"
  local pids=() objects=() src obj extra warn
  for src in "${kernel_sources[@]}" "${support_sources[@]}" "$driver"; do
    obj="$dir/$(basename "${src%.c}").o"
    objects+=("$obj")
    extra=$(isa_flags "$arch" "$src")
    warn="-Wall -Wextra"
    [[ $src == native/src/cpu/* ]] || warn="$warn -Werror"
    # shellcheck disable=SC2086
    "$cc" -std=c11 -ffp-contract=off $warn "$@" $extra -Inative/src -c "$src" -o "$obj" &
    pids+=($!)
    if ((${#pids[@]} == 2)); then
      wait "${pids[0]}" && wait "${pids[1]}" || { echo "build $name failed at $src" >&2; exit 1; }
      pids=()
    fi
  done
  for pid in "${pids[@]}"; do wait "$pid" || { echo "build $name failed" >&2; exit 1; }; done
  "$cc" "$@" "${objects[@]}" -lm -lpthread -o "$dir/formats_test"
}

# run LABEL COMMAND...: prints the driver's last line, fails the script on a failing run.
status=0
run() {
  local label=$1
  shift
  local log="$out/$label.log" start=$SECONDS
  if "$@" >"$log" 2>&1; then
    echo "$label: $(tail -n 1 "$log") ($((SECONDS - start)) s)"
  else
    echo "$label: FAILED ($((SECONDS - start)) s)"
    grep -v '^#' "$log" | tail -n 40
    status=1
  fi
}

for config in "${configs[@]}"; do
  case "$config" in
    native)
      build native x86 gcc -O2
      run "native gcc -O2" "$out/native/formats_test"
      ;;
    sanitize)
      # clang needs its runtime (Debian package libclang-rt-14-dev); without it, gcc's libasan/libubsan.
      sanitizer_cc=clang
      echo 'int main(void) { return 0; }' >"$out/probe.c"
      if ! clang -fsanitize=address,undefined "$out/probe.c" -o "$out/probe" 2>/dev/null; then
        sanitizer_cc=gcc
        echo "note: clang's sanitizer runtime is missing (apt install libclang-rt-14-dev); using gcc's" >&2
      fi
      build sanitize x86 "$sanitizer_cc" -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
        -fno-sanitize-recover=all
      run "$sanitizer_cc asan+ubsan" "$out/sanitize/formats_test"
      ;;
    aarch64)
      build aarch64 aarch64 aarch64-linux-gnu-gcc -O2 -static
      run "aarch64 qemu -cpu max" qemu-aarch64-static -cpu max "$out/aarch64/formats_test"
      run "aarch64 qemu -cpu cortex-a53" qemu-aarch64-static -cpu cortex-a53 "$out/aarch64/formats_test"
      ;;
    armv7)
      build armv7 armv7 arm-linux-gnueabihf-gcc -O2 -static -mfloat-abi=hard
      run "armv7 qemu-arm (NEON)" qemu-arm-static "$out/armv7/formats_test"
      ;;
    *)
      echo "unknown configuration '$config' (expected native, sanitize, aarch64 or armv7)" >&2
      exit 2
      ;;
  esac
done
exit $status
