#!/usr/bin/env bash
# yocto/check.sh: bitbake's own checks of yocto/meta-mrtd with oe-core + meta-oe, offline.
#
# Usage: yocto/check.sh
#
# For each release in RELEASES whose checkouts are given, a build dir (MACHINE qemuarm64, INIT_MANAGER
# systemd, BB_NO_NETWORK) with oe-core's meta, meta-oe and a copy of meta-mrtd, then:
#   parse     bitbake -p                               (layer warnings counted)
#   env       bitbake -e mrtd-agent                    (the recipe comes from meta-mrtd)
#   graph     bitbake -g mrtd-agent mrtd-agent-bin packagegroup-mrtd   (DEPENDS and RDEPENDS resolve)
#   arch      bitbake -e -b mrtd-agent_*.bb with MACHINE qemuarm  (skipped, with the 32-bit Arm message)
#   tasks     do_fetch (from the prepared DL_DIR), do_unpack, do_compile, do_install, do_populate_lic,
#             do_package of mrtd-agent and mrtd-agent-bin
#   package   installed-but-not-shipped files and QA issues, the package's files, owners and modes,
#             the binary unstripped (same bytes as do_compile's) and identical between the two recipes
# Lines "<release> <step> ok|FAILED|skipped <detail>", then "summary: ...". Exit 0 when every step
# of every checked release is ok, 1 when one FAILED, 3 when no release could be checked.
#
# Environment:
#   YOCTO_SCARTHGAP_DIR, YOCTO_WRYNOSE_DIR (YOCTO_<RELEASE>_DIR for any release in RELEASES): a
#       directory holding checkouts bitbake/, openembedded-core/ and meta-openembedded/ at that
#       release's branches (scarthgap: bitbake 2.8; styhead: 2.10; walnascar: 2.12; whinlatter: 2.16;
#       wrynose: 2.18; oe-core and meta-oe: the branch named after the release)
#   RELEASES           default "scarthgap wrynose"
#   YOCTO_CHECK_DIR    build dirs, caches, logs (default /tmp/mrtd-yocto-check; no "+" in the path)
#   MRTD_DL_DIR        download dir; default $YOCTO_CHECK_DIR/downloads, filled by
#                      `bun yocto/sources.ts downloads` (npm cache or `npm pack`, and a release build)
#   YOCTO_CHECK_USER   when run as root, bitbake runs as this user (default mrtd-yocto; created if missing:
#                      OE refuses to build as root)
# Host: Debian/Ubuntu with bitbake's host tools (chrpath cpio diffstat gawk ...), the en_US.UTF-8
# locale, and apt-get download for Debian's pseudo (the fakeroot of the host-only tasks).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LAYER_SRC=$HERE/meta-mrtd
RELEASES=${RELEASES:-"scarthgap wrynose"}
WORK=${YOCTO_CHECK_DIR:-/tmp/mrtd-yocto-check}
DL=${MRTD_DL_DIR:-$WORK/downloads}
BBUSER=${YOCTO_CHECK_USER:-mrtd-yocto}
CLEAN_PATH=/usr/sbin:/usr/bin:/sbin:/bin
RECIPES="mrtd-agent mrtd-agent-bin"

die() { echo "check.sh: $*" >&2; exit 2; }
[[ $WORK != *+* ]] || die "YOCTO_CHECK_DIR must not contain '+' (OE's sanity check refuses it)"
mkdir -p "$WORK/logs" "$WORK/layers" || die "cannot create $WORK"
exec 9>"$WORK/.lock"
flock -w 3600 9 || die "another yocto/check.sh holds $WORK/.lock"

if [[ $(id -u) -eq 0 ]]; then
  if ! id -u "$BBUSER" >/dev/null 2>&1; then
    echo "# creating user $BBUSER (bitbake does not run as root)"
    useradd -m -s /bin/bash "$BBUSER" || die "useradd $BBUSER failed"
  fi
  AS=(runuser -u "$BBUSER" --)
  BBHOME=$(getent passwd "$BBUSER" | cut -d: -f6)
else
  AS=()
  BBUSER=$(id -un)
  BBHOME=$HOME
fi
locale -a 2>/dev/null | grep -qix 'en_US\.utf-\{0,1\}8' || die "bitbake needs the en_US.UTF-8 locale (locales: enable it in /etc/locale.gen, run locale-gen)"

declare -A RES
report() { # release step status detail
  RES[$1.$2]=$3
  printf '%-10s %-8s %-7s %s\n' "$1" "$2" "$3" "$4"
}

# ---- downloads: everything the recipes fetch, so do_fetch works offline and checks each sha256 ----
if [[ -z ${MRTD_DL_DIR:-} ]]; then
  echo "# preparing $DL (bun yocto/sources.ts downloads)"
  (cd "$REPO" && node_modules/.bin/bun yocto/sources.ts downloads "$DL") >"$WORK/logs/downloads.log" 2>&1 ||
    die "preparing downloads failed: $(tail -n1 "$WORK/logs/downloads.log")"
fi
[[ -d $DL ]] || die "MRTD_DL_DIR=$DL is not a directory"

# ---- Debian's pseudo as OE's PSEUDO_SYSROOT expects it (the host-only tasks run under fakeroot) ----
PSEUDO_DIR=$WORK/host/pseudo
if [[ ! -x $PSEUDO_DIR/usr/bin/pseudo ]]; then
  rm -rf "$WORK/host" && mkdir -p "$WORK/host/debs" "$WORK/host/x" && chmod 0777 "$WORK/host/debs"
  if (cd "$WORK/host/debs" && apt-get download -q pseudo libpseudo) >"$WORK/logs/pseudo.log" 2>&1; then
    for x in "$WORK"/host/debs/*.deb; do dpkg -x "$x" "$WORK/host/x"; done
    mkdir -p "$PSEUDO_DIR/usr/bin" "$PSEUDO_DIR/usr/lib/pseudo/lib"
    cp "$WORK/host/x/usr/bin/pseudo" "$PSEUDO_DIR/usr/bin/"
    cp "$(find "$WORK/host/x" -name libpseudo.so | head -n1)" "$PSEUDO_DIR/usr/lib/pseudo/lib/"
  fi
fi
[[ -x $PSEUDO_DIR/usr/bin/pseudo ]] && PSEUDO_OK=1 || PSEUDO_OK=0

# ---- a helper layer: a stub virtual/fakeroot-native, so no native pseudo is built from source ----
HELPER=$WORK/layers/meta-mrtd-check-offline
mkdir -p "$HELPER/conf" "$HELPER/recipes"
cat >"$HELPER/conf/layer.conf" <<EOF
# yocto/check.sh only: the host's pseudo (PSEUDO_SYSROOT) is the fakeroot of the offline tasks
BBPATH .= ":\${LAYERDIR}"
BBFILES += "\${LAYERDIR}/recipes/*.bb"
BBFILE_COLLECTIONS += "mrtd-check-offline"
BBFILE_PATTERN_mrtd-check-offline = "^\${LAYERDIR}/"
BBFILE_PRIORITY_mrtd-check-offline = "1"
LAYERDEPENDS_mrtd-check-offline = "core"
LAYERSERIES_COMPAT_mrtd-check-offline = "$RELEASES"
EOF
cat >"$HELPER/recipes/fakeroot-host-native_1.0.bb" <<'EOF'
SUMMARY = "yocto/check.sh: the host's pseudo stands in for pseudo-native"
LICENSE = "MIT"
PROVIDES = "virtual/fakeroot-native"
INHIBIT_DEFAULT_DEPS = "1"
EXCLUDE_FROM_WORLD = "1"
inherit native
do_fetch[noexec] = "1"
do_unpack[noexec] = "1"
do_patch[noexec] = "1"
do_configure[noexec] = "1"
do_compile[noexec] = "1"
do_install[noexec] = "1"
EOF

# parses single recipe files with the release's tinfoil and prints why each is skipped, if it is
cat >"$WORK/skipped.py" <<'EOF'
import os, sys, bb.tinfoil
with bb.tinfoil.Tinfoil(tracking=False) as t:
    t.prepare(config_only=True, quiet=2)
    for fn in sys.argv[1:]:
        d = t.parse_recipe_file(fn)
        print("%s %s %s" % ("SKIPPED" if d.getVar("__SKIPPED") else "PARSED", os.path.basename(fn), d.getVar("__SKIPPED") or ""))
EOF

# the layer as committed in this checkout, copied so the bitbake user can read it
rm -rf "$WORK/layers/meta-mrtd" && cp -R "$LAYER_SRC" "$WORK/layers/meta-mrtd"
LAYER=$WORK/layers/meta-mrtd
[[ $(id -u) -eq 0 ]] && chown -R "$BBUSER:" "$WORK" "$DL"

bb() { # release logfile cmd...: runs cmd in the release's build environment as the bitbake user
  local rel=$1 log=$2; shift 2
  timeout -k 60 "${STEP_TIMEOUT:-3600}" "${AS[@]}" env -i HOME="$BBHOME" USER="$BBUSER" LOGNAME="$BBUSER" \
    LANG=en_US.UTF-8 LC_ALL=en_US.UTF-8 TERM=dumb PATH=$CLEAN_PATH ${BBX:+$BBX} \
    bash -c 'src=$1 b=$2; shift 2; cd "$src/openembedded-core" && . ./oe-init-build-env "$b" "$src/bitbake" >/dev/null || exit 98
             exec "$@"' _ "$SRC" "$WORK/build/$rel" "$@" >"$log" 2>&1
}

first_error() { # log: the first ERROR line, or the last line
  local e
  e=$(grep -m1 -E '^ERROR: ' "$1" | grep -v -E 'Command execution failed|^ERROR: Logfile of failure')
  [[ -z $e ]] && e=$(grep -E '^ERROR: ' "$1" | grep -v -E '^ERROR: (Command execution failed|Logfile of failure|Task \()' | head -n1)
  [[ -z $e ]] && e="(no ERROR line) $(grep -v '^\s*$' "$1" | tail -n1)"
  echo "${e:0:300}"
}

checked=0
for rel in $RELEASES; do
  var="YOCTO_${rel^^}_DIR"
  SRC=${!var:-}
  if [[ -z $SRC ]]; then
    report "$rel" all skipped "$var is not set (a dir with bitbake/, openembedded-core/, meta-openembedded/ checkouts at $rel)"
    continue
  fi
  for t in bitbake openembedded-core meta-openembedded; do
    [[ -d $SRC/$t ]] || { report "$rel" all FAILED "$var=$SRC has no $t/"; continue 2; }
  done
  [[ $SRC != *+* ]] || { report "$rel" all FAILED "$var contains '+' (OE's sanity check refuses it)"; continue; }
  checked=$((checked + 1))
  b=$WORK/build/$rel; st=$WORK/state/$rel; logs=$WORK/logs/$rel
  rm -rf "$b" "$logs"; mkdir -p "$b/conf" "$st" "$logs"
  [[ $(id -u) -eq 0 ]] && chown -R "$BBUSER:" "$b" "$st" "$logs"
  "${AS[@]}" bash -c "cat >'$b/conf/bblayers.conf'" <<EOF
# written by yocto/check.sh
LCONF_VERSION = "7"
BBPATH = "\${TOPDIR}"
BBFILES ?= ""
BBLAYERS ?= " \\
  $SRC/openembedded-core/meta \\
  $SRC/meta-openembedded/meta-oe \\
  $LAYER \\
  $HELPER \\
  "
EOF
  if ! bb "$rel" "$logs/init.log" true; then
    report "$rel" all FAILED "oe-init-build-env: $(first_error "$logs/init.log")"; continue
  fi
  "${AS[@]}" bash -c "cat >>'$b/conf/local.conf'" <<EOF

# ---- yocto/check.sh ----
MACHINE ?= "qemuarm64"
DISTRO = "nodistro"
INIT_MANAGER = "systemd"
BB_NO_NETWORK = "1"
CONNECTIVITY_CHECK_URIS = ""
SANITY_TESTED_DISTROS = ""
USER_CLASSES = ""
BB_HASHSERVE_UPSTREAM = ""
SSTATE_MIRRORS = ""
PREMIRRORS = ""
MIRRORS = ""
TMPDIR = "$st/tmp"
PERSISTENT_DIR = "$st/persistent"
SSTATE_DIR = "$st/sstate-cache"
DL_DIR = "$DL"
# host tools stand in for native recipes that would be built from downloaded sources; enough for
# do_install/do_package of recipes that compile nothing in C, not a real build configuration
PATCHTOOL = "patch"
ASSUME_PROVIDED += "patch-native patch-replacement-native quilt-native pseudo-native systemd-systemctl-native rpm-native dwarfsrcfiles-native file-native"
PREFERRED_PROVIDER_virtual/fakeroot-native = "fakeroot-host-native"
PSEUDO_SYSROOT = "$PSEUDO_DIR"
SKIP_FILEDEPS = "1"
EOF

  # parse
  t=$SECONDS; log=$logs/parse.log
  if bb "$rel" "$log" bitbake -p; then
    w=$(grep -c "^WARNING:.*meta-mrtd" "$log")
    stats=$(grep -o 'Parsing of [0-9]* .bb files complete ([0-9]* cached, [0-9]* parsed)' "$log" | tail -n1)
    if ((w)); then
      report "$rel" parse FAILED "$w warning(s) from meta-mrtd, first: $(grep -m1 "^WARNING:.*meta-mrtd" "$log" | cut -c1-200)"
    else
      report "$rel" parse ok "${stats:-parsed from cache} [$((SECONDS - t))s]"
    fi
  else
    report "$rel" parse FAILED "$(first_error "$log") [log: $log]"; continue
  fi

  # env
  log=$logs/env.log
  if bb "$rel" "$log" bitbake -e mrtd-agent; then
    file=$(sed -n 's/^FILE="\(.*\)"$/\1/p' "$log" | head -n1)
    pv=$(sed -n 's/^PV="\(.*\)"$/\1/p' "$log" | head -n1)
    deps=$(sed -n 's/^DEPENDS="\(.*\)"$/\1/p' "$log" | head -n1 | xargs)
    if [[ $file != "$LAYER"/* ]]; then
      report "$rel" env FAILED "FILE=$file is not in meta-mrtd"
    elif grep -qE '^DEPENDS=".*(virtual/[a-z-]*(gcc|compilerlibs)|virtual/libc)' "$log"; then
      report "$rel" env FAILED "DEPENDS pulls a C toolchain: $deps"
    else
      report "$rel" env ok "FILE=${file#"$LAYER"/} PV=$pv DEPENDS=\"$deps\""
    fi
  else
    report "$rel" env FAILED "$(first_error "$log") [log: $log]"
  fi

  # graph: build and runtime dependencies of the recipes, the packagegroup and the example image
  log=$logs/graph.log
  if bb "$rel" "$log" bash -c 'mkdir -p graph && cd graph && bitbake -g mrtd-agent mrtd-agent-bin packagegroup-mrtd mrtd-image'; then
    dot=$b/graph/task-depends.dot
    missing=""
    for want in pcsc-lite ccid ca-certificates; do grep -q "^\"$want\.do_package" "$dot" 2>/dev/null || grep -q "\"$want\.do_" "$dot" || missing+=" $want"; done
    if [[ -n $missing ]]; then
      report "$rel" graph FAILED "runtime dependencies missing from the graph:$missing"
    else
      report "$rel" graph ok "$(wc -l <"$b/graph/pn-buildlist") recipes in the closure of mrtd-image; RDEPENDS pcsc-lite ccid ca-certificates resolve"
    fi
  else
    report "$rel" graph FAILED "$(first_error "$log") [log: $log]"
  fi

  # arch: with a 32-bit Arm MACHINE both recipes are skipped, with the reason (tinfoil parses just them)
  log=$logs/arch.log
  files=$(ls "$LAYER"/recipes-mrtd/mrtd-agent/mrtd-agent*_*.bb)
  BBX="MACHINE=qemuarm BB_ENV_PASSTHROUGH_ADDITIONS=MACHINE" bb "$rel" "$log" python3 "$WORK/skipped.py" $files
  n=$(grep -c "^SKIPPED .*has no build for arm (MACHINE qemuarm)" "$log")
  if [[ $n -eq $(wc -w <<<"$files") ]]; then
    report "$rel" arch ok "qemuarm: $(grep -m1 '^SKIPPED ' "$log" | cut -d' ' -f3- | cut -c1-130)..."
  else
    report "$rel" arch FAILED "not every recipe skipped with the 32-bit Arm message for MACHINE=qemuarm: $(grep -v '^NOTE' "$log" | tail -n1 | cut -c1-200) [log: $log]"
  fi
  unset BBX

  # host-only tasks
  log=$logs/tasks.log; t=$SECONDS
  if ((!PSEUDO_OK)); then
    report "$rel" tasks skipped "no host pseudo (apt-get download pseudo libpseudo failed: $WORK/logs/pseudo.log)"; continue
  fi
  targets=""
  for r in $RECIPES; do targets+=" $r:do_package $r:do_populate_lic"; done
  if bb "$rel" "$log" bitbake $targets; then
    report "$rel" tasks ok "do_fetch (offline, sha256 checked) do_unpack do_configure do_compile do_install do_populate_lic do_package for $RECIPES [$((SECONDS - t))s]"
  else
    report "$rel" tasks FAILED "$(first_error "$log") [log: $log]"; continue
  fi

  # package: QA, installed-but-not-shipped, content
  qa=$(grep -E "QA Issue|installed-vs-shipped|not shipped|^WARNING: mrtd-agent" "$log" | sort -u)
  notes=""
  if [[ -n $qa ]]; then
    report "$rel" package FAILED "$(wc -l <<<"$qa") QA issue(s), first: $(head -n1 <<<"$qa" | cut -c1-250)"; continue
  fi
  declare -A sums=()
  bad=""
  for r in $RECIPES; do
    # TMPDIR gets the libc suffix on some releases (tmp-glibc)
    ps=$(ls -d "$st"/tmp*/work/*/"$r"/*/packages-split 2>/dev/null | head -n1)
    [[ -d $ps ]] || { bad+=" $r: no packages-split;"; continue; }
    p=$ps/$r
    for f in usr/bin/mrtd-agent lib/systemd/system/mrtd-agent.service etc/mrtd-agent/config.toml; do
      g=$f; [[ -e $p/$g ]] || g=usr/$f
      [[ -e $p/$g ]] || { bad+=" $r lacks /$f;"; continue; }
    done
    bin=$p/usr/bin/mrtd-agent
    [[ -f $bin ]] || continue
    sums[$r]=$(sha256sum <"$bin" | cut -d' ' -f1)
    # unstripped: symbols kept, and the program still in the executable's .bun section
    sections=$(readelf -SW "$bin" 2>/dev/null)
    grep -q ' \.symtab ' <<<"$sections" || bad+=" $r: binary has no .symtab (stripped);"
    grep -q ' \.bun ' <<<"$sections" || bad+=" $r: binary has no .bun section (Bun's embedded program lost);"
    [[ $(od -An -tu2 -j18 -N2 "$bin" | tr -d ' ') == 183 ]] || bad+=" $r: binary is not AArch64;"
    unit=$(find "$p" -name mrtd-agent.service | head -n1)
    grep -q '^ExecStart=/usr/bin/mrtd-agent run' "$unit" || bad+=" $r: unit ExecStart is not /usr/bin/mrtd-agent;"
    pkgdata=$(ls -d "$ps"/../pkgdata/runtime/"$r" 2>/dev/null | head -n1)
    if [[ -f $pkgdata ]]; then
      grep -q '^RDEPENDS:'"$r"':.*pcsc-lite-lib' "$pkgdata" || bad+=" $r: RDEPENDS lacks pcsc-lite-lib;"
    fi
    [[ -f $pkgdata ]] || bad+=" $r: no pkgdata;"
    size=$(sed -n "s/^PKGSIZE:$r: //p" "$pkgdata" 2>/dev/null)
    # owners and modes as the package records them (pseudo's database of do_package)
    owners=$("${AS[@]}" env PSEUDO_PREFIX="$PSEUDO_DIR/usr" PSEUDO_LIBDIR="$PSEUDO_DIR/usr/lib/pseudo/lib" \
      PSEUDO_LOCALSTATEDIR="$ps/../pseudo/" PSEUDO_PASSWD=/ PSEUDO_NOSYMLINKEXP=1 \
      "$PSEUDO_DIR/usr/bin/pseudo" find "$p" -mindepth 1 -printf '%M %U:%G /%P\n' 2>/dev/null)
    grep -q '^-rwxr-xr-x 0:0 /usr/bin/mrtd-agent$' <<<"$owners" || bad+=" $r: /usr/bin/mrtd-agent is not root 0755;"
    grep -q '^-rw-r--r-- 0:0 /etc/mrtd-agent/config.toml$' <<<"$owners" || bad+=" $r: config.toml is not root 0644;"
    notroot=$(grep -v ' 0:0 ' <<<"$owners")
    [[ -z $notroot ]] || bad+=" $r: not owned by root: $(head -n1 <<<"$notroot");"
    echo "# $rel $r: $(grep -v '^d' <<<"$owners" | tr '\n' ';')"
    notes+=" $r: ${size:-?} bytes installed (PKGSIZE), binary $(stat -c %s "$bin") bytes, sha256 ${sums[$r]:0:16}…;"
  done
  if [[ ${#sums[@]} -eq 2 && ${sums[mrtd-agent]} != "${sums[mrtd-agent-bin]}" ]]; then
    bad+=" the source build's binary differs from the released one (not reproducible);"
  fi
  if [[ -n $bad ]]; then
    report "$rel" package FAILED "${bad# }"
  else
    report "$rel" package ok "no QA issues, nothing installed-but-not-shipped;${notes} source build == release binary"
  fi
done

summary="" rc=0
for rel in $RELEASES; do
  parts=""
  for s in parse env graph arch tasks package; do
    v=${RES[$rel.$s]:-${RES[$rel.all]:-n/a}}
    parts+="$s $v, "
    [[ $v == FAILED ]] && rc=1
  done
  summary+="$rel: ${parts%, }; "
done
((checked == 0)) && rc=3
echo "summary: ${summary%; }"
exit $rc
