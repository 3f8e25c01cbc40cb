SUMMARY = "mrtd-agent and what a passport-reading board needs: pcscd, the CCID driver, CA certificates"
LICENSE = "MIT"

# The agent package: mrtd-agent (built from source) or mrtd-agent-bin (a released binary).
MRTD_AGENT_PACKAGE ??= "mrtd-agent"

inherit packagegroup

RDEPENDS:${PN} = " \
    ${MRTD_AGENT_PACKAGE} \
    pcsc-lite \
    pcsc-lite-lib \
    ccid \
    ca-certificates \
"
# Reader diagnostics on the board (pcsc_scan) where meta-oe has them.
RRECOMMENDS:${PN} = "pcsc-tools"
