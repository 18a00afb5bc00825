#!/usr/bin/env bash
# Installs everything Whittle needs that this machine lacks, then builds it. Idempotent: a second run on
# an up-to-date checkout only re-runs the incremental builds.
#   1. Debian packages (apt-get, when root or with sudo; otherwise a message listing what is missing)
#   2. npm dependencies (npm ci, only when package-lock.json changed since the last install)
#   3. the native addon (node-gyp) and the TypeScript + renderer build
#   4. the XNNPACK peer of `bench kernels` (bench/xnnpack/, its own addon: the product never links XNNPACK)
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: ffmpeg (camera), mosquitto (external-broker tests), openssh-server + socat + iproute2 + udev
# (device provisioning tests), chromium (UI tests), dataset-fashion-mnist + libonnx-testdata (real data),
# build-essential + python3 (node-gyp), clang + clang-format (sanitizers, C format check),
# qemu-user-static + cross compilers (ARM kernels), libxnnpack-dev + libpthreadpool-dev (XNNPACK, the second
# peer of `bench kernels`; xnnpack.h includes pthreadpool.h, which libxnnpack-dev does not pull in),
# python3-torchvision (model definitions for the import conformance set; no weights), python3-pyarmnn (Arm NN's
# TfLite parser; its CpuRef backend is the separate libarmnn-cpuref-backend22: the TFLite peer of the importer
# tests), flatbuffers-compiler (flatc).
PACKAGES=(
  ffmpeg mosquitto openssh-server socat iproute2 udev systemd chromium
  dataset-fashion-mnist libonnx-testdata python3-torch libopenblas0
  build-essential python3 clang clang-format
  qemu-user-static gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf g++-aarch64-linux-gnu g++-arm-linux-gnueabihf
  libc6-dev-arm64-cross libc6-dev-armhf-cross
  libxnnpack-dev libpthreadpool-dev
  python3-torchvision python3-pyarmnn libarmnn-cpuref-backend22 flatbuffers-compiler
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO=(sudo)
  else
    echo "whittle setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "whittle setup: run as root, or with passwordless sudo, or install them yourself:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "whittle setup: installing Debian packages: ${missing[*]}"
  "${SUDO[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# clang's sanitizer runtime is packaged per clang version (Debian 12: libclang-rt-14-dev); install the
# one matching the clang that is there, when the distribution has it (the C tests fall back to gcc's).
if command -v clang >/dev/null; then
  clang_major=$(clang --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
  rt="libclang-rt-${clang_major}-dev"
  if [ -n "$clang_major" ] && ! dpkg-query -W -f='${Status}' "$rt" 2>/dev/null | grep -q 'install ok installed' &&
    apt-cache show "$rt" >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$rt"
    elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      DEBIAN_FRONTEND=noninteractive sudo apt-get install -y -q --no-install-recommends "$rt"
    else
      echo "whittle setup: optional $rt is missing (clang sanitizer runtime): sudo apt-get install $rt" >&2
    fi
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]')
if ((node_major < 20)); then
  echo "whittle setup: Node.js 20 or newer is needed; this is $(node --version)" >&2
  exit 1
fi

# The electron binary and onnxruntime's CUDA parts cannot be downloaded on offline machines; neither is
# needed to build or test (electron's install script is also denied in package.json's allowScripts).
export ELECTRON_SKIP_BINARY_DOWNLOAD=1 ONNXRUNTIME_NODE_INSTALL=skip

lock_hash=$(sha256sum package-lock.json package.json | sha256sum | cut -c1-64)
stamp=node_modules/.whittle-install-stamp
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  # A worktree sharing another checkout's install through a link: npm ci would empty the linked directory
  # (every checkout sharing it loses its dependencies) before installing a copy here.
  if [ -L node_modules ]; then
    echo "whittle setup: node_modules links to $(readlink node_modules), installed for another package.json or" >&2
    echo "package-lock.json than this checkout's; npm ci through the link would empty it. Run npm run setup" >&2
    echo "where it points, or replace the link with this checkout's own install (rm node_modules; npm run setup)." >&2
    exit 1
  fi
  echo "whittle setup: npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
else
  # Sources may have changed since the install: make's dependency tracking rebuilds only what changed.
  npx --no-install node-gyp build --directory native >/dev/null
fi

echo "whittle setup: building"
npm run --silent build

# The XNNPACK peer of `bench kernels`: configured once, then rebuilt incrementally. Without it the benchmark
# leaves its column out and says why; test/bench/xnnpack-peer.test.ts fails when the header is there and
# the peer is not.
if [ -f /usr/include/xnnpack.h ]; then
  if [ -f bench/xnnpack/build/Makefile ]; then
    xnnpack_step=build
  else
    xnnpack_step=rebuild
  fi
  npx --no-install node-gyp "$xnnpack_step" --directory bench/xnnpack >/dev/null ||
    echo "whittle setup: the XNNPACK peer (bench/xnnpack) did not build; bench kernels will leave it out" >&2
else
  echo "whittle setup: no /usr/include/xnnpack.h (libxnnpack-dev); bench kernels will run without XNNPACK" >&2
fi

# Debian's ARM Node for the emulated-device tests (test/support/emulated-device.ts), built once and cached
# under build/sysroot: a second run only re-checks the manifest. Without network or mirror it is not a
# setup failure: those tests then skip, saying why.
for arch in arm64 armhf; do
  bash scripts/arm-sysroot.sh "$arch" ||
    echo "whittle setup: no $arch Node sysroot; the emulated ARM device tests will be skipped" >&2
done
