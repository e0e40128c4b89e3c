#!/usr/bin/env bash
# Install Debian's linux-headers for the newest 6.1 and 6.12 kernels (the
# "real kernels" profile and its test). Prints the installed header dirs.
#   deploy/install-kernel-headers.sh            install (as root) and print
#   deploy/install-kernel-headers.sh --print    only print what is installed
set -euo pipefail

newest() {  # newest available package name matching an extended regex
    apt-cache search --names-only "$1" | awk '{print $1}' | sort -V | tail -n 1
}
installed() {
    dpkg-query -W -f='${Package} ${Status}\n' 'linux-headers-*-amd64' 2>/dev/null \
        | awk '/ok installed/ {print $1}' | grep -E "$1" | sort -V | tail -n 1 || true
}

RE_61='^linux-headers-6\.1\.0-[0-9]+-amd64$'
RE_612='^linux-headers-6\.12\.[0-9]+\+deb[0-9]+-amd64$'

if [[ "${1:-}" != "--print" ]]; then
    want=()
    for re in "$RE_61" "$RE_612"; do
        if [[ -z "$(installed "$re")" ]]; then
            pkg="$(newest "$re")"
            if [[ -z "$pkg" ]]; then
                apt-get update -qq
                pkg="$(newest "$re")"
            fi
            [[ -n "$pkg" ]] || { echo "install-kernel-headers: no package matches $re" >&2; exit 1; }
            want+=("$pkg")
        fi
    done
    if ((${#want[@]})); then
        if [[ $EUID -ne 0 ]]; then
            echo "install-kernel-headers: as root, run: apt-get install ${want[*]}" >&2
            exit 1
        fi
        echo "install-kernel-headers: installing ${want[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${want[@]}" >/dev/null
    fi
fi
for re in "$RE_61" "$RE_612"; do
    pkg="$(installed "$re")"
    [[ -n "$pkg" ]] && echo "/usr/src/${pkg}"
done
