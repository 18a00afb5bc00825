#!/usr/bin/env bash
# The whole test suite: static checks, then unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== type check"
npx --no-install tsc -p tsconfig.json --noEmit
npx --no-install tsc -p renderer/tsconfig.json --noEmit
echo "== lint"
npx --no-install eslint --max-warnings 0 .
echo "== format"
npx --no-install prettier --check . >/dev/null || { npx --no-install prettier --check . ; exit 1; }
find native bench/xnnpack -path native/build -prune -o -path bench/xnnpack/build -prune -o \( -name '*.c' -o -name '*.h' -o -name '*.cc' -o -name '*.inc' \) -print | xargs clang-format --dry-run --Werror

echo "== C kernel tests: native, sanitizers, aarch64 and armv7 under qemu"
bash scripts/native-tests.sh
bash scripts/native-format-tests.sh

echo "== tests"
shopt -s globstar nullglob
# The suite is what test/ holds: dist/ may keep the compiled output of a test whose source is gone.
files=()
for source in test/**/*.test.ts; do
  compiled="dist/${source%.ts}.js"
  if [ ! -f "$compiled" ]; then
    echo "$compiled is missing: did the build run?" >&2
    exit 1
  fi
  files+=("$compiled")
done
# Integration tests start real servers on fixed-free ports; one file at a time keeps two cores responsive.
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
