# shellcheck shell=bash disable=SC2034
# Recipe of the UML guest: Debian 12 with systemd, Docker, IPVS/ARP tools and a pytest venv,
# reached from the host over ssh on the link-local tap. Sourced by scripts/lab after
# common.recipe.sh.

GUEST_PACKAGES=systemd,systemd-sysv,dbus,udev,openssh-server,iproute2,iptables,arptables,ipvsadm,docker.io,crun,kmod,procps,ca-certificates,python3,python3-venv,curl,psmisc
# Kernel modules the lab needs loaded at boot (the UML kernel has them as modules; its 6.1
# has no ip_vs_twos, which came with 6.2).
GUEST_MODULES="ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_dh ip_vs_lblc ip_vs_lblcr ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_mh ip_vs_pe_sip arp_tables arptable_filter arpt_mangle veth bridge br_netfilter overlay nf_conntrack"
GUEST_VENV=/opt/lab-venv
GUEST_DISK_SIZE=8G

# build_guest ROOT UML_MODULES_DIR PUBKEY: debootstrap and configure the guest's root.
build_guest() {
    local root=$1 moddir=$2 pubkey=$3
    debootstrap_root "$GUEST_PACKAGES" "$root"
    configure_debian "$root"

    echo lvslab >"$root/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 lvslab\n' >"$root/etc/hosts"
    # A throwaway copy-on-write disk: no write barriers (each would be an fsync of the cow file
    # on the host), so Docker's and dpkg's many fsyncs cost the guest nothing.
    echo '/dev/ubda / ext4 defaults,noatime,barrier=0,commit=60 0 1' >"$root/etc/fstab"

    mkdir -p "$root/lib/modules"
    cp -a "$moddir" "$root/lib/modules/"
    in_root "$root" depmod "$(basename "$moddir")"
    echo "$GUEST_MODULES" | tr ' ' '\n' >"$root/etc/modules-load.d/lab.conf"

    # No default route and no DNS: the guest reaches the outside only through the proxy.
    cat >"$root/etc/systemd/network/10-eth0.network" <<EOF
[Match]
Name=eth0
[Network]
LinkLocalAddressing=no
IPv6AcceptRA=no
# Scope global: the kernel gives 169.254/16 link scope, and Docker's MASQUERADE then
# picks another interface's address for the containers' traffic to the proxy.
[Address]
Address=$LINK_GUEST_IP/$LINK_PREFIX
Scope=global
EOF
    : >"$root/etc/resolv.conf"
    in_root "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1

    # Docker would otherwise give containers public resolvers; the proxy resolves names.
    # crun (C) instead of runc (Go) starts each container process: every Ansible task and
    # testinfra check is a `docker exec`, and in UML, where each new process and page costs
    # host round trips, crun's exec took 1.4 s against runc's 3.6 s (same container, busy guest).
    mkdir -p "$root/etc/docker"
    cat >"$root/etc/docker/daemon.json" <<EOF
{"dns": ["$LINK_HOST_IP"], "log-driver": "local", "storage-driver": "overlay2",
 "runtimes": {"crun": {"path": "/usr/bin/crun"}}, "default-runtime": "crun"}
EOF

    install -d -m 0700 "$root/root/.ssh"
    install -m 0600 "$pubkey" "$root/root/.ssh/authorized_keys"
    cat >"$root/etc/ssh/sshd_config.d/lab.conf" <<EOF
PasswordAuthentication no
PermitRootLogin prohibit-password
UseDNS no
EOF

    # Units that only slow a throwaway guest down.
    in_root "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
        e2scrub_reap.service fstrim.timer getty@tty1.service serial-getty@ttyS0.service \
        systemd-timesyncd.service >/dev/null 2>&1

    # The venv that `scripts/lab run` puts first on PATH, for pytest sessions in the guest.
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    in_root "$root" python3 -m venv "$GUEST_VENV"
    # The build runs on the host's network, before the proxy exists: skip /etc/pip.conf.
    in_root "$root" env PIP_CONFIG_FILE=/dev/null PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$GUEST_VENV/bin/pip" install --quiet --no-cache-dir -r /dev/stdin \
        <"$LAB_D/guest-requirements.txt"
    : >"$root/etc/resolv.conf"
}
