# Shared by scripts/run and scripts/test: a virtual environment of our own
# (Debian's Python refuses global pip installs, PEP 668) and, for the tests,
# the Debian packages of the real servers they start.

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

ensure_venv() {
    # $1: what to install, e.g. "." or ".[test]"
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "smtp-tls-exporter needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
        exit 2
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        echo "creating virtual environment $VENV with $("$PYTHON" --version)"
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --editable "$1"
}

install_debian_packages() {
    # Installs what is missing when we are root on Debian; elsewhere the
    # tests that need these packages skip and say why.
    missing=""
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
            || missing="$missing $package"
    done
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "note: not root with apt-get; tests needing$missing will be skipped" >&2
        return 0
    fi
    echo "installing Debian packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
    # Package scripts may start the system's own Postfix or Dovecot; the
    # tests start private instances on other ports and need neither.
}
