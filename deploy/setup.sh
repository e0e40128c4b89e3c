#!/usr/bin/env bash
# Make a fresh Debian machine ready to run and test bpbot.  Idempotent: safe
# (and fast) to run before every `make demo` / `make test`.
#
#   deploy/setup.sh            install missing Debian packages + the .venv
#   deploy/setup.sh --no-apt   only the Python environment
#
# Environment: PYTHON=/path/to/python3.11+ picks the interpreter for the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

apt=1
for arg in "$@"; do
    case "$arg" in
        --no-apt) apt=0 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "setup: unknown option: $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

# --- Debian packages -------------------------------------------------------
REQUIRED=(git gcc make dovecot-imapd bubblewrap redis-server)
OPTIONAL=(ccache)

missing_pkgs() {
    local p
    for p in "$@"; do
        if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != *"ok installed"* ]]; then
            echo "$p"
        fi
    done
}

# The tests start their own dovecot (throwaway config, free port); the
# packaged system service is not wanted.  No systemd is fine: ignore errors.
stop_system_dovecot() {
    if command -v systemctl >/dev/null 2>&1; then
        systemctl stop dovecot >/dev/null 2>&1 || true
        systemctl disable dovecot >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        service dovecot stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d dovecot disable >/dev/null 2>&1 || true
    fi
}

if [[ $apt == 1 ]] && command -v dpkg-query >/dev/null 2>&1; then
    mapfile -t miss_req < <(missing_pkgs "${REQUIRED[@]}")
    mapfile -t miss_opt < <(missing_pkgs "${OPTIONAL[@]}")
    missing=("${miss_req[@]}" "${miss_opt[@]}")
    if ((${#missing[@]})); then
        if [[ $EUID -eq 0 ]]; then
            say "installing Debian packages: ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
            if [[ " ${missing[*]} " == *" dovecot-imapd "* ]]; then
                stop_system_dovecot
            fi
        else
            cmd="sudo apt-get install --no-install-recommends ${missing[*]}"
            if ((${#miss_opt[@]})); then
                say "optional Debian packages missing: ${miss_opt[*]} (install: $cmd)"
            fi
            if ((${#miss_req[@]})); then
                die "required Debian packages missing: ${miss_req[*]}; install them as root" \
                    "with: $cmd   (or run deploy/setup.sh as root)"
            fi
        fi
    fi
elif [[ $apt == 1 ]]; then
    say "no dpkg-query (not Debian?): skipping Debian packages;" \
        "make sure ${REQUIRED[*]} ${OPTIONAL[*]} are installed"
fi

# --- Python environment ----------------------------------------------------
PY="${PYTHON:-python3}"
VENV="$ROOT/.venv"
STAMP="$VENV/.bpbot-pyproject.sha256"

if [[ ! -x "$VENV/bin/python" ]]; then
    command -v "$PY" >/dev/null 2>&1 || die "$PY not found (need Python >= 3.11)"
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$PY is $("$PY" -V 2>&1); bpbot needs Python >= 3.11 (set PYTHON=...)"
    say "creating $VENV with $("$PY" -V 2>&1)"
    "$PY" -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$STAMP" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    say "installing Python packages (pip install -e '.[test]')"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    echo "$want" >"$STAMP"
fi
# The bot's own bytecode, as installing a wheel would write it: an editable
# install leaves bot/ uncompiled, and with PYTHONDONTWRITEBYTECODE set every
# bpbot run (each `bpbot check`) would compile its ~50 modules again. Not the
# bundled sample tree: its files are data, copied and hashed as they are.
"$VENV/bin/python" -m compileall -q -x "bot/demo/data/" bot >/dev/null
say "python environment ready"
