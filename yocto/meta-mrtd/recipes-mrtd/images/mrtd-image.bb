SUMMARY = "Example board image: systemd, pcscd with the CCID driver, and mrtd-agent as an enabled service"
DESCRIPTION = "A starting point for integrators (MACHINE = qemuarm64 in kas/mrtd-qemuarm64.yml). \
Per-device secrets are not part of it: see the meta-mrtd README, Provisioning."
LICENSE = "MIT"

inherit core-image features_check

# the service, its DynamicUser and ImportCredential need systemd as init manager
REQUIRED_DISTRO_FEATURES = "systemd"

IMAGE_INSTALL = "packagegroup-core-boot packagegroup-mrtd ${CORE_IMAGE_EXTRA_INSTALL}"
IMAGE_FEATURES += "ssh-server-dropbear"
IMAGE_LINGUAS = ""
