#!/usr/bin/env bash
# Builds a Debian sysroot holding Node.js for an ARM architecture, for running the real agent under
# qemu-user (qemu-aarch64-static -L SYSROOT / qemu-arm-static -L SYSROOT): Debian's own `nodejs` and
# every package it needs at run time, including the `Architecture: all` ones libnode loads its bundled
# JavaScript from (node-acorn, node-cjs-module-lexer, node-undici, node-busboy, node-xtend, ...).
#
#   scripts/arm-sysroot.sh ARCH            build build/sysroot/ARCH unless a complete one is there
#   scripts/arm-sysroot.sh --check ARCH    exit 0 when build/sysroot/ARCH is complete, else 1 with why
#   ARCH: arm64 | armhf (Debian's names; the addon calls armhf "armv7")
#
# How, and the invariants:
# - dpkg is never told about the foreign architecture. apt runs with a private configuration under
#   build/sysroot/.apt/ARCH (its own sources list, lists, cache and an empty status file) in which ARCH
#   is the native architecture: the system's apt state and `dpkg --print-foreign-architectures` are
#   untouched, so a later `apt-get update` cannot fail on a foreign index (a trial run that did
#   `dpkg --add-architecture armhf` broke setup.sh's apt-get update on a mirror-sync size mismatch).
# - The indexes are verified by apt against Debian's archive keyring (InRelease signatures); every
#   .deb's SHA256 is checked against the SHA256 field of that index before it is extracted.
# - A sysroot is built in a temporary directory and moved into place only when complete, with a
#   manifest of every file's SHA256 and the package list. --check and every run re-verify the manifest,
#   so a sysroot that is incomplete or corrupted is refused (and, without --check, rebuilt); a
#   half-extracted directory is never left under the final name.
# - Downloads are cached under build/sysroot/.debs/ARCH and reused when their hash still matches the
#   index; a run on a complete sysroot downloads nothing.
# Environment: SYSROOT_DIR (default build/sysroot), DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR,
#              DEBIAN_SUITE (default: this machine's codename, else bookworm),
#              ARM_SYSROOT_OFFLINE=1: rebuild from the indexes and .debs already cached, downloading nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "arm-sysroot: $*" >&2
  exit 1
}

check_only=0
if [ "${1:-}" = --check ]; then
  check_only=1
  shift
fi
[ $# -eq 1 ] || fail "usage: scripts/arm-sysroot.sh [--check] arm64|armhf"
arch=$1
case $arch in
  arm64) loader=lib/ld-linux-aarch64.so.1 ;;
  armhf) loader=lib/ld-linux-armhf.so.3 ;;
  *) fail "unknown architecture \"$arch\": expected arm64 or armhf" ;;
esac

base=$(realpath -m "${SYSROOT_DIR:-build/sysroot}")
root="$base/$arch"
# The manifest names these packages, their versions and the SHA256 of every extracted file.
manifest_name=.whittle-sysroot-manifest

# complete <dir>: exit status 0 when dir is a finished sysroot whose files all match its manifest.
complete() {
  local dir=$1
  [ -f "$dir/$manifest_name" ] || {
    echo "no manifest ($dir/$manifest_name): never finished"
    return 1
  }
  [ -x "$dir/usr/bin/node" ] && [ -e "$dir/$loader" ] || {
    echo "usr/bin/node or $loader is missing"
    return 1
  }
  local bad
  # Lines "<sha256>  ./<path>" after the "# package" header lines.
  if ! bad=$(cd "$dir" && grep -v '^#' "$manifest_name" | sha256sum --quiet --strict -c 2>&1); then
    echo "files differ from the manifest: $(echo "$bad" | head -n 3 | tr '\n' ' ')"
    return 1
  fi
}

if [ -d "$root" ]; then
  if why=$(complete "$root"); then
    [ $check_only = 1 ] || echo "arm-sysroot: $root is complete (cached)"
    exit 0
  fi
  [ $check_only = 1 ] && fail "$root is not a usable sysroot: $why; rebuild it with scripts/arm-sysroot.sh $arch"
  echo "arm-sysroot: $root is not usable ($why): rebuilding" >&2
else
  [ $check_only = 1 ] && fail "$root does not exist; build it with scripts/arm-sysroot.sh $arch"
fi

for tool in apt-get apt-cache dpkg-deb sha256sum; do
  command -v $tool >/dev/null || fail "$tool is missing (this script needs Debian's apt and dpkg)"
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f $keyring ] || fail "$keyring is missing (Debian package debian-archive-keyring)"

start=$(date +%s)
suite=${DEBIAN_SUITE:-$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")}
suite=${suite:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

# The private apt world: nothing in it reads or writes /etc/apt, /var/lib/apt or /var/lib/dpkg.
aptdir="$base/.apt/$arch"
mkdir -p "$aptdir/lists/partial" "$aptdir/cache/archives/partial" "$aptdir/sources.list.d" "$aptdir/preferences.d"
: >"$aptdir/status"
cat >"$aptdir/sources.list" <<EOF
deb [arch=$arch signed-by=$keyring] $mirror $suite main
deb [arch=$arch signed-by=$keyring] $mirror $suite-updates main
deb [arch=$arch signed-by=$keyring] $security $suite-security main
EOF
apt_options=(
  -o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
  -o "Dir::Etc::sourcelist=$aptdir/sources.list" -o "Dir::Etc::sourceparts=$aptdir/sources.list.d"
  -o "Dir::Etc::preferencesparts=$aptdir/preferences.d"
  -o "Dir::State=$aptdir" -o "Dir::State::lists=$aptdir/lists" -o "Dir::State::status=$aptdir/status"
  -o "Dir::Cache=$aptdir/cache" -o "Debug::NoLocking=1"
  # apt would otherwise drop to the _apt user, who cannot write into this checkout.
  -o "APT::Sandbox::User=$(id -un)"
)

echo "arm-sysroot: reading Debian $suite's $arch indexes from $mirror"
# An index that fails to download (a mirror caught mid-sync: "File has unexpected size") is ignored
# by apt, which keeps every index it did verify; the packages then come from the suites it has. Only
# when nodejs is in none of them is that a failure.
offline=${ARM_SYSROOT_OFFLINE:-0}
if [ "$offline" = 1 ]; then
  echo "arm-sysroot: ARM_SYSROOT_OFFLINE=1: using the $arch indexes cached in $aptdir" >&2
  touch "$aptdir/update.log"
elif ! apt-get "${apt_options[@]}" -q update >"$aptdir/update.log" 2>&1; then
  echo "arm-sysroot: warning: some $arch indexes could not be read; using the others:" >&2
  grep -E '^(Err|E):' "$aptdir/update.log" | sed 's/^/  /' >&2 || true
fi
apt-cache "${apt_options[@]}" show nodejs >/dev/null 2>&1 ||
  fail "nodejs is in none of the $arch indexes read from $mirror (network or mirror down?): $(tail -n 3 "$aptdir/update.log")"

# The run-time closure of nodejs: Depends and Pre-Depends only. Virtual names (e.g. libgcc1) are
# printed in <angle brackets> and resolved by their real providers elsewhere in the list.
mapfile -t packages < <(apt-cache "${apt_options[@]}" depends --recurse --no-recommends --no-suggests \
  --no-conflicts --no-breaks --no-replaces --no-enhances nodejs | grep -v '^ ' | grep -v '^<' | sort -u)
((${#packages[@]})) || fail "nodejs is not in Debian $suite for $arch"
for needed in nodejs node-acorn node-cjs-module-lexer node-undici node-busboy node-xtend; do
  printf '%s\n' "${packages[@]}" | grep -qx "$needed" ||
    fail "$needed is not in the closure of nodejs: Debian's packaging changed"
done

debs="$base/.debs/$arch"
mkdir -p "$debs"
# A build killed before its trap ran leaves a hidden tree that nothing reads: remove it now.
rm -rf "$base/.$arch.building."* "$base/.$arch.old."*
work=$(mktemp -d "$base/.$arch.building.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree="$work/root"
mkdir -p "$tree"
list="$work/packages"
: >"$list"
for pkg in "${packages[@]}"; do
  # The candidate's fields, from the verified index.
  record=$(apt-cache "${apt_options[@]}" show --no-all-versions "$pkg")
  version=$(sed -n 's/^Version: //p' <<<"$record" | head -n1)
  sha=$(sed -n 's/^SHA256: //p' <<<"$record" | head -n1)
  file=$(sed -n 's/^Filename: //p' <<<"$record" | head -n1)
  [ -n "$sha" ] && [ -n "$file" ] || fail "$pkg: the index gives no SHA256 or Filename"
  deb="$debs/$(basename "$file")"
  if [ ! -f "$deb" ] || [ "$(sha256sum "$deb" | cut -d' ' -f1)" != "$sha" ]; then
    if [ -f "$deb" ]; then
      echo "arm-sysroot: the cached $(basename "$deb") does not match the index's SHA256: refused" >&2
      rm -f "$deb"
    fi
    [ "$offline" = 1 ] &&
      fail "$pkg: no cached .deb with the index's SHA256 $sha, and ARM_SYSROOT_OFFLINE=1 forbids downloading it"
    (cd "$debs" && apt-get "${apt_options[@]}" -q download "$pkg=$version" >/dev/null 2>"$work/download.log") ||
      fail "cannot download $pkg $version: $(tail -n 2 "$work/download.log")"
    # apt names the file after package, version and arch, which is the pool file name (epochs escaped).
    got=$(ls -t "$debs"/"${pkg}"_*.deb | head -n1)
    [ "$got" = "$deb" ] || mv "$got" "$deb"
    actual=$(sha256sum "$deb" | cut -d' ' -f1)
    if [ "$actual" != "$sha" ]; then
      rm -f "$deb"
      fail "$pkg: the downloaded $(basename "$deb") has SHA256 $actual, the index says $sha; refused"
    fi
  fi
  dpkg-deb -x "$deb" "$tree" || fail "cannot extract $deb"
  echo "# package $pkg $version $sha" >>"$list"
done

# Debian's nodejs finds its JavaScript dependencies under /usr/share/nodejs; qemu -L resolves absolute
# paths inside the sysroot first, so nothing needs rewriting. Check the two files every run needs.
[ -x "$tree/usr/bin/node" ] || fail "nodejs extracted no usr/bin/node"
[ -e "$tree/$loader" ] || fail "libc6 extracted no $loader"

{
  cat "$list"
  (cd "$tree" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
} >"$work/manifest"
mv "$work/manifest" "$tree/$manifest_name"

# Replace the old (unusable) sysroot only now that the new one is complete.
if [ -e "$root" ]; then
  old="$base/.$arch.old.$$"
  mv "$root" "$old"
  rm -rf "$old"
fi
mv "$tree" "$root"
size=$(du -sm "$root" | cut -f1)
echo "arm-sysroot: $root ready: ${#packages[@]} packages, ${size} MB, $(($(date +%s) - start)) s"
