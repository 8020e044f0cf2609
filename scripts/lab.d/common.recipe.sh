# shellcheck shell=bash disable=SC2034
# Recipe shared by the UML guest and the container images. Sourced by scripts/lab; every
# file named *.recipe.sh (and the host's CA bundle) is part of the cache key, so an edit
# here rebuilds what depends on it.

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY_MIRROR=http://deb.debian.org/debian-security

# The host-only link: link-local, never a private range. The host end also runs the proxy.
LINK_HOST_IP=169.254.77.1
LINK_GUEST_IP=169.254.77.2
LINK_PREFIX=30
PROXY_PORT=8888
PROXY_URL=http://$LINK_HOST_IP:$PROXY_PORT

# Addresses that must never go through the proxy: the lab's own networks.
NO_PROXY_LIST=localhost,127.0.0.1,::1,169.254.0.0/16,172.16.0.0/12,.lab

# debootstrap into $2 with the packages in $1 (comma list), reusing downloaded debs.
# It runs in a mount namespace of its own so an interrupted run leaves no mounts behind. The
# mirror is plain http: the Release file's signature is checked against debian-archive-keyring
# (a host package), and a missing key fails the build instead of skipping the check.
debootstrap_root() {
    local packages=$1 root=$2
    mkdir -p "$CACHE/debs"
    unshare --mount --propagation private \
        debootstrap --force-check-gpg --variant=minbase --cache-dir="$CACHE/debs" --include="$packages" \
        "$SUITE" "$root" "$MIRROR" >"$root.debootstrap.log" 2>&1 \
        || die "debootstrap of $root failed; see $root.debootstrap.log"
    rm -f "$root.debootstrap.log"
}

# Run a command chrooted into $1 with /proc and /dev, in a private mount namespace.
in_root() {
    local root=$1
    shift
    # The single quotes are meant: $root and $@ are the inner sh's, set by its arguments.
    # shellcheck disable=SC2016
    unshare --mount --propagation private sh -euc '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --bind /dev "$root/dev"
        exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive "$@"' sh "$root" "$@"
}

# apt sources, the proxy for apt/pip/curl, and the host's extra CA trust: this host's outbound
# HTTPS may be re-signed by a CA that only the host's bundle trusts. Only the host's CAs that
# Debian's own bundle lacks are added.
configure_debian() {
    local root=$1
    cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
    cat >"$root/etc/apt/apt.conf.d/80lab-proxy" <<EOF
Acquire::http::Proxy "$PROXY_URL";
Acquire::https::Proxy "$PROXY_URL";
EOF
    cat >"$root/etc/pip.conf" <<EOF
[global]
proxy = $PROXY_URL
cert = /etc/ssl/certs/ca-certificates.crt
EOF
    cat >"$root/etc/profile.d/lab-proxy.sh" <<EOF
export http_proxy=$PROXY_URL https_proxy=$PROXY_URL no_proxy=$NO_PROXY_LIST
export HTTP_PROXY=$PROXY_URL HTTPS_PROXY=$PROXY_URL NO_PROXY=$NO_PROXY_LIST
EOF
    cat >>"$root/etc/environment" <<EOF
http_proxy=$PROXY_URL
https_proxy=$PROXY_URL
no_proxy=$NO_PROXY_LIST
EOF
    # One certificate a file: update-ca-certificates links only single-certificate files. The
    # first file read is Debian's bundle (what the root trusts already), the second the host's.
    mkdir -p "$root/usr/local/share/ca-certificates/lab-host"
    awk -v dir="$root/usr/local/share/ca-certificates/lab-host" '
        /-----BEGIN CERTIFICATE-----/ { pem = ""; inside = 1 }
        inside { pem = pem $0 "\n" }
        /-----END CERTIFICATE-----/ {
            inside = 0
            if (FNR == NR) { debian[pem] = 1 }
            else if (!(pem in debian)) { out = sprintf("%s/host-%03d.crt", dir, ++n); printf "%s", pem > out; close(out) }
        }' "$root/etc/ssl/certs/ca-certificates.crt" "$HOST_CA_BUNDLE"
    in_root "$root" update-ca-certificates >/dev/null 2>&1
    # The UML kernel has no nftables ip/arp families: legacy backends only.
    local tool
    for tool in iptables ip6tables arptables ebtables; do
        if [ -e "$root/usr/sbin/$tool-legacy" ]; then
            in_root "$root" update-alternatives --quiet --set "$tool" "/usr/sbin/$tool-legacy"
        fi
    done
    # As Debian's slim container images do: dpkg writes without fsync and skips docs, man
    # pages and translations; apt fetches no translations. Every package installs as it would
    # elsewhere, in a fraction of the UML guest's time.
    cat >"$root/etc/dpkg/dpkg.cfg.d/lab-speedup" <<EOF
force-unsafe-io
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/locale/*
path-exclude=/usr/share/info/*
EOF
    echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/80lab-speedup"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
}
