SUMMARY = "mrtd-agent: reads ICAO 9303 passports through pcsc-lite and reports to a fleet over MQTT 5"
DESCRIPTION = "A single-file Bun program (bun build --compile) that talks to pcscd through \
libpcsclite.so.1 (dlopen'ed at run time, so it is an explicit runtime dependency)."
HOMEPAGE = "https://example.invalid/mrtd-agent"
LICENSE = "Apache-2.0"
LIC_FILES_CHKSUM = "file://${COREBASE}/meta/files/common-licenses/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The binary is cross-compiled outside bitbake with `deploy/build-binary.sh arm64`
# (Bun cannot run inside a native sysroot without its own toolchain) and shipped as
# a release artifact: copy it into files/ beside this recipe (or add a bbappend whose
# FILESEXTRAPATHS points at the build output).
SRC_URI = "file://mrtd-agent-linux-${MRTD_AGENT_ARCH}"
FILESEXTRAPATHS:prepend := "${THISDIR}/files:"
MRTD_AGENT_ARCH = "${@ {'aarch64': 'arm64', 'x86_64': 'x64'}.get(d.getVar('TARGET_ARCH'), 'unsupported')}"
COMPATIBLE_HOST = "(aarch64|x86_64).*-linux"

S = "${WORKDIR}"

do_install() {
    install -d ${D}${bindir}
    install -m 0755 ${WORKDIR}/mrtd-agent-linux-${MRTD_AGENT_ARCH} ${D}${bindir}/mrtd-agent
    install -d ${D}${sysconfdir}/mrtd-agent
}

# `strip` removes the program embedded in a `bun build --compile` binary: never strip it,
# and do not split debug info out of it.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INHIBIT_SYSROOT_STRIP = "1"
INSANE_SKIP:${PN} += "already-stripped ldflags textrel"

# libpcsclite.so.1 is opened with dlopen (bun:ffi), so the shlib scanner cannot see it.
RDEPENDS:${PN} += "pcsc-lite-lib pcsc-lite ccid"
