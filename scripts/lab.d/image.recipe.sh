# shellcheck shell=bash disable=SC2034
# Recipe of the container images (Molecule platforms and the lab topology): Debian 12 with
# systemd as PID 1 and python3, without what the roles install, so the roles prove their
# installs (Molecule's default scenario converges on it). The "baked" variant adds the Debian
# packages the roles and Ansible's apt module install (not pyroute2, which comes from PyPI):
# the lab topology runs on it, so its converges skip apt.
# Sourced by scripts/lab after common.recipe.sh.

IMAGE_REPO=lvs-dr-lab/debian12
IMAGE_PACKAGES_base=systemd,systemd-sysv,dbus,python3,iproute2,iputils-ping,ca-certificates,curl,procps
IMAGE_PACKAGES_baked=$IMAGE_PACKAGES_base,ipvsadm,arptables,apache2,python3-apt,python3-venv,python3-packaging,kmod,iputils-arping,keepalived,iptables

# image_tag VARIANT: the image name in the lab's engine.
image_tag() {
    if [ "$1" = base ]; then echo "$IMAGE_REPO:latest"; else echo "$IMAGE_REPO:$1"; fi
}

# `docker import` options; STOPSIGNAL is refused by Docker 20.10, so `docker run` sets it.
IMAGE_IMPORT_CHANGES=('CMD ["/sbin/init"]' 'ENV container=docker')

# build_image VARIANT ROOT: debootstrap and configure one image's root.
build_image() {
    local variant=$1 root=$2 packages_var=IMAGE_PACKAGES_$1
    [ -n "${!packages_var:-}" ] || die "unknown image variant '$variant' (known: base, baked)"
    debootstrap_root "${!packages_var}" "$root"
    configure_debian "$root"
    # What Docker's own debian images do: dpkg skips its fsyncs (a container's files are
    # thrown away with it), which saves most of an install's time on the lab's disk.
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    # Every container must get a machine-id of its own at first boot.
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    # Units that fail or hang without a console or udev in a container.
    in_root "$root" systemctl mask getty.target console-getty.service systemd-udevd.service \
        systemd-udev-trigger.service systemd-modules-load.service apt-daily.timer \
        apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service \
        >/dev/null 2>&1
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/usr/share/doc/* "$root"/usr/share/man/*
}
