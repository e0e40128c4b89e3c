#!/usr/bin/env bash
# Prepare a Debian 12 host for rules/backports.toml (the real backports tree):
# the generator's tools, the 6.1 kernel source it generates from (as a git
# repository with an annotated tag, which gentree.py's `git describe` needs),
# Debian's 6.1 kernel headers, and a clone of the backports tree.
#
#   deploy/install-real-tree.sh --tree SRC [--dest DIR] [--owner USER] [--no-apt]
#
#   --tree SRC    the backports tree to clone: a path or URL of a git repository
#   --dest DIR    where the clones go (default /var/lib/bpbot): DIR/backports
#                 and DIR/linux-6.1.y, the paths rules/backports.toml names
#   --owner USER  chown the clones to USER (e.g. bpbot)
#   --no-apt      do not install Debian packages
#
# Idempotent: what is there already is kept (the tree clone is fetched).
# Older kernels: `bpbot kernels add --dir /srv/ksrc-backports <header .debs>`
# (see the comments in rules/backports.toml), then `bpbot kernels verify`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="" dest=/var/lib/bpbot owner="" apt=1
while (($#)); do
    case "$1" in
        --tree) tree="${2:?--tree needs a path or URL}"; shift 2 ;;
        --dest) dest="${2:?--dest needs a dir}"; shift 2 ;;
        --owner) owner="${2:?--owner needs a user}"; shift 2 ;;
        --no-apt) apt=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install-real-tree: unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
done
say() { echo "install-real-tree: $*" >&2; }
die() { echo "install-real-tree: error: $*" >&2; exit 1; }
[[ -n "$tree" ]] || die "--tree SRC is required (a path or URL of the backports tree)"

if [[ $apt == 1 ]]; then
    [[ $EUID -eq 0 ]] || die "installing packages needs root (or use --no-apt)"
    pkgs=(coccinelle linux-source-6.1 python-is-python3 git make gcc bc bison flex libelf-dev)
    say "installing ${pkgs[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
        >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null; }
    "$ROOT/deploy/install-kernel-headers.sh" >/dev/null
fi
command -v spatch >/dev/null || die "spatch (coccinelle) is missing"

mkdir -p "$dest"
upstream="$dest/linux-6.1.y"
if [[ ! -d "$upstream/.git" ]]; then
    tarball=$(ls /usr/src/linux-source-6.1.tar.* 2>/dev/null | head -n 1)
    [[ -n "$tarball" ]] || die "no /usr/src/linux-source-6.1.tar.*: install linux-source-6.1"
    tmp=$(mktemp -d "$dest/.linux-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    say "unpacking $tarball"
    tar -xf "$tarball" -C "$tmp"
    src=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n 1)
    sub=$(sed -n 's/^SUBLEVEL = //p' "$src/Makefile")
    say "making $upstream a git repository tagged v6.1.$sub"
    git -C "$src" init -q
    # Debian's .gitignore ignores everything at the top ("/*"): add by force.
    git -C "$src" -c user.name=bpbot -c user.email=bpbot@localhost add -A -f
    git -C "$src" -c user.name=bpbot -c user.email=bpbot@localhost \
        commit -q -m "Linux 6.1.$sub (Debian linux-source-6.1)"
    git -C "$src" -c user.name=bpbot -c user.email=bpbot@localhost \
        tag -a "v6.1.$sub" -m "Linux 6.1.$sub"
    mv "$src" "$upstream"
fi
if [[ -d "$dest/backports/.git" ]]; then
    say "fetching $tree into $dest/backports"
    git -C "$dest/backports" fetch -q --tags "$tree" || say "fetch failed; keeping the clone as it is"
else
    say "cloning $tree into $dest/backports"
    git clone -q "$tree" "$dest/backports"
fi
if [[ -n "$owner" ]]; then
    chown -R "$owner:" "$dest/backports" "$upstream"
fi
echo "tree:     $dest/backports ($(git -C "$dest/backports" describe --always --tags))"
echo "upstream: $upstream ($(git -C "$upstream" describe --tags))"
"$ROOT/deploy/install-kernel-headers.sh" --print | sed 's/^/kernel:   /'
