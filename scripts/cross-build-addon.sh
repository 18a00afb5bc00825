#!/usr/bin/env bash
# Builds the Node-API addon (native/src/*.c, native/src/cpu/*.c and native/src/*.cc) into one
# shared object per CPU, without node-gyp and without downloading anything: Node's own headers
# (node_api.h, found next to the node binary, in /usr/include/node, or in $NODE_INCLUDE) and
# node-addon-api's headers are all it needs. Node-API is ABI-stable, so these headers serve every
# Node >= 18 and Electron build on the device.
#
#   x64     g++ (or $CXX), ISA files (*__avx2.c, *__avx512*.c) get their ISA flags only
#   arm64   aarch64-linux-gnu-g++ (Debian package g++-aarch64-linux-gnu), *__neon.c, *__neondot.c
#   armv7   arm-linux-gnueabihf-g++ (Debian package g++-arm-linux-gnueabihf); the base objects run on
#           VFP-only cores (-mfpu=vfpv3-d16), only *__neon.c files get -mfpu=neon
#   native  the compiler of this machine for this machine's CPU (used when the addon is built on a device)
#
# Output: build/addon/<arch>/whittle_native.node (or $OUT_DIR/<arch>/whittle_native.node).
# Usage: scripts/cross-build-addon.sh [x64|arm64|armv7|native ...]   (default: x64 arm64 armv7)
# Environment: SRC_DIR (default native/src), ADDON_API_INCLUDE (node-addon-api's include dir),
#              NODE_INCLUDE (the directory holding node_api.h), OUT_DIR, JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."

SRC_DIR=${SRC_DIR:-native/src}
OUT_DIR=${OUT_DIR:-build/addon}
JOBS=${JOBS:-2}

fail() {
  echo "cross-build-addon: $*" >&2
  exit 1
}

find_node_include() {
  if [ -n "${NODE_INCLUDE:-}" ]; then
    [ -f "$NODE_INCLUDE/node_api.h" ] || fail "NODE_INCLUDE=$NODE_INCLUDE holds no node_api.h"
    echo "$NODE_INCLUDE"
    return
  fi
  local node_prefix
  node_prefix=$(dirname "$(dirname "$(command -v node || echo /usr/bin/node)")")
  for dir in "$node_prefix/include/node" /usr/include/node /usr/local/include/node; do
    if [ -f "$dir/node_api.h" ]; then
      echo "$dir"
      return
    fi
  done
  fail "cannot find Node's headers (node_api.h) in $node_prefix/include/node, /usr/include/node or /usr/local/include/node; install the Debian package libnode-dev or set NODE_INCLUDE"
}

find_addon_api_include() {
  if [ -n "${ADDON_API_INCLUDE:-}" ]; then
    [ -f "$ADDON_API_INCLUDE/napi.h" ] || fail "ADDON_API_INCLUDE=$ADDON_API_INCLUDE holds no napi.h"
    echo "$ADDON_API_INCLUDE"
    return
  fi
  [ -f node_modules/node-addon-api/napi.h ] || fail "node_modules/node-addon-api/napi.h is missing; run npm ci"
  echo "node_modules/node-addon-api"
}

# build_one <arch> <c++ compiler> <c compiler>
build_one() {
  local arch=$1 cxx=$2 cc=$3
  command -v "$cxx" >/dev/null || fail "$arch: the compiler $cxx is missing (Debian package: $(package_of "$arch"))"
  command -v "$cc" >/dev/null || fail "$arch: the compiler $cc is missing (Debian package: $(package_of "$arch"))"
  local base_flags=() isa_pattern
  case $arch in
    x64) isa_pattern='__(avx2|avx512|avx512vnni|avx512vpopcnt)\.c$' ;;
    arm64) isa_pattern='__(neon|neondot)\.c$' ;;
    armv7)
      isa_pattern='__neon\.c$'
      base_flags=(-march=armv7-a -mfloat-abi=hard -mfpu=vfpv3-d16)
      ;;
    *) fail "unknown architecture $arch" ;;
  esac
  local node_include addon_include
  node_include=$(find_node_include)
  addon_include=$(find_addon_api_include)
  local out="$OUT_DIR/$arch" obj="$OUT_DIR/$arch/obj"
  mkdir -p "$obj"
  local common=(-O3 -fPIC -Wall -pthread -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION
    -I"$node_include" -I"$addon_include" -I"$SRC_DIR" "${base_flags[@]}")
  local jobs=() objects=()
  shopt -s nullglob
  local newest_header
  # shellcheck disable=SC2012
  newest_header=$(ls -t "$SRC_DIR"/*.h "$SRC_DIR"/*.inc "$SRC_DIR"/cpu/*.h "$addon_include"/napi*.h 2>/dev/null | head -n 1)
  for src in "$SRC_DIR"/*.c "$SRC_DIR"/cpu/*.c; do
    local name isa_flags=()
    name=$(basename "$src" .c)
    if [[ $name =~ __[a-z0-9]+$ && ! $name =~ __scalar$ ]]; then
      # An ISA file: built only for its architecture, with its flags only (the base must run on any CPU).
      [[ $src =~ $isa_pattern ]] || continue
      case ${name##*__} in
        avx2) isa_flags=(-mavx2 -mfma) ;;
        avx512) isa_flags=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512vl) ;;
        avx512vnni) isa_flags=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512vnni) ;;
        avx512vpopcnt) isa_flags=(-mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vbmi) ;;
        neon) [ "$arch" = armv7 ] && isa_flags=(-mfpu=neon) ;;
        neondot) isa_flags=(-march=armv8.2-a+dotprod) ;;
      esac
    fi
    local rel=${src#"$SRC_DIR"/}
    local o="$obj/${rel//\//_}"
    o="${o%.c}.o"
    objects+=("$o")
    # Incremental: an object newer than its source and every header is kept.
    if [ "$o" -nt "$src" ] && [ "$o" -nt "$newest_header" ]; then continue; fi
    jobs+=("$cc -std=c11 ${common[*]} ${isa_flags[*]} -c -o $o $src")
  done
  # The binding: binding.cc and the files it is split into (binding_*.cc).
  for src in "$SRC_DIR"/*.cc; do
    local o="$obj/$(basename "$src" .cc).o"
    objects+=("$o")
    if [ "$o" -nt "$src" ] && [ "$o" -nt "$newest_header" ]; then continue; fi
    jobs+=("$cxx -std=c++17 -fexceptions ${common[*]} -c -o $o $src")
  done
  if ((${#jobs[@]})); then
    printf '%s\0' "${jobs[@]}" | xargs -0 -P "$JOBS" -I{} sh -c '{}' || fail "$arch: compilation failed"
  fi
  # Node's symbols (napi_*) stay undefined: the process loading the addon provides them.
  "$cxx" -shared -pthread "${base_flags[@]}" -o "$out/whittle_native.node" "${objects[@]}" -lm ||
    fail "$arch: linking failed"
  echo "cross-build-addon: $arch -> $out/whittle_native.node ($(stat -c %s "$out/whittle_native.node") bytes)"
}

package_of() {
  case $1 in
    arm64) echo g++-aarch64-linux-gnu ;;
    armv7) echo g++-arm-linux-gnueabihf ;;
    *) echo g++ ;;
  esac
}

native_arch() {
  case $(uname -m) in
    x86_64) echo x64 ;;
    aarch64 | arm64) echo arm64 ;;
    armv7l | armv8l) echo armv7 ;;
    *) fail "this machine's CPU $(uname -m) is not one Whittle builds for (x86_64, aarch64, armv7l)" ;;
  esac
}

targets=("$@")
((${#targets[@]})) || targets=(x64 arm64 armv7)
for target in "${targets[@]}"; do
  case $target in
    x64) build_one x64 "${CXX:-g++}" "${CC:-gcc}" ;;
    arm64) build_one arm64 aarch64-linux-gnu-g++ aarch64-linux-gnu-gcc ;;
    armv7) build_one armv7 arm-linux-gnueabihf-g++ arm-linux-gnueabihf-gcc ;;
    native) build_one "$(native_arch)" "${CXX:-g++}" "${CC:-gcc}" ;;
    *) fail "unknown target \"$target\": expected x64, arm64, armv7 or native" ;;
  esac
done
