# mrtd-agent from a released binary (deploy/build-binary.sh's output, published by your CI), for teams
# that do not build Bun programs in bitbake. Same service, configuration and dependencies as the
# source recipe; install one or the other (packagegroup-mrtd: MRTD_AGENT_PACKAGE = "mrtd-agent-bin").
require mrtd-agent.inc

LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# The service, on by default; turn it off with SYSTEMD_AUTO_ENABLE:pn-${PN} = "disable" (local.conf
# or a bbappend), change it with a drop-in (see README). The config keeps local edits on upgrade.
inherit systemd
SYSTEMD_SERVICE:${PN} = "mrtd-agent.service"
SYSTEMD_AUTO_ENABLE:${PN} ??= "enable"
CONFFILES:${PN} = "${sysconfdir}/mrtd-agent/config.toml"

# Where your CI publishes mrtd-agent-linux-arm64 and mrtd-agent-linux-x64 for version PV.
MRTD_AGENT_RELEASE_URL ??= "https://example.invalid/mrtd-agent/releases/download/v${PV}"

SRC_URI += "${MRTD_AGENT_RELEASE_URL}/mrtd-agent-linux-${MRTD_AGENT_ARCH};name=${MRTD_AGENT_ARCH};downloadfilename=mrtd-agent-${PV}-linux-${MRTD_AGENT_ARCH}"
require mrtd-agent-bin-sums.inc

S = "${MRTD_UNPACKDIR}"

do_configure[noexec] = "1"
do_compile[noexec] = "1"

MRTD_AGENT_BINARY = "${MRTD_UNPACKDIR}/mrtd-agent-${PV}-linux-${MRTD_AGENT_ARCH}"

RPROVIDES:${PN} += "mrtd-agent"
RCONFLICTS:${PN} += "mrtd-agent"
RREPLACES:${PN} += "mrtd-agent"
