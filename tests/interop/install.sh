#!/bin/sh
# The third-party clients tests/interop/ drives (docs/clients.md says what each one sends):
# Debian's chromium, tmux, profanity, poezio, python3-nbxmpp and gajim with what drives it
# on a virtual screen (xvfb, xdotool, dbus-run-session, gdbus, python3-pyatspi) (apt); Converse.js 14.0.0
# (npm pack, cached in .cache/interop/); nbxmpp 7.4.0 in a venv over Debian's
# python3 (GObject and libsoup come from python3-nbxmpp's dependencies).
# Idempotent; silent when everything is there.
set -eu
cd "$(dirname "$0")/../.."
CACHE=.cache/interop
CONVERSE_VERSION=14.0.0
NBXMPP_VERSION=7.4.0

need=""
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v tmux >/dev/null 2>&1 || need="$need tmux"
command -v profanity >/dev/null 2>&1 || need="$need profanity"
command -v poezio >/dev/null 2>&1 || need="$need poezio"
command -v setpriv >/dev/null 2>&1 || need="$need util-linux"  # Poezio and Gajim refuse root: run as nobody
command -v gajim >/dev/null 2>&1 || need="$need gajim"
command -v Xvfb >/dev/null 2>&1 || need="$need xvfb"
command -v xdotool >/dev/null 2>&1 || need="$need xdotool"
command -v dbus-run-session >/dev/null 2>&1 || need="$need dbus-daemon"
command -v gdbus >/dev/null 2>&1 || need="$need libglib2.0-bin"
[ -d /usr/lib/python3/dist-packages/pyatspi ] || need="$need python3-pyatspi"  # with at-spi2-core, the GTK bridge
[ -d /usr/lib/python3/dist-packages/nbxmpp ] || need="$need python3-nbxmpp"
/usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
command -v npm >/dev/null 2>&1 || need="$need npm"
if [ -n "$need" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "Installing the interop clients from Debian:$need"
    # (the lock timeout: another apt may be running, e.g. a second checkout's install)
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends $need >/dev/null
fi

converse="$CACHE/converse.js-$CONVERSE_VERSION"
if [ ! -f "$converse/dist/converse.min.js" ]; then
    echo "Fetching converse.js@$CONVERSE_VERSION (npm) into $converse"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "converse.js@$CONVERSE_VERSION" >/dev/null 2>&1)
    rm -rf "$converse" && mkdir -p "$converse"
    tar -xzf "$tmp/converse.js-$CONVERSE_VERSION.tgz" -C "$converse" --strip-components=1 package/dist package/package.json
    rm -rf "$tmp"
fi

venv="$CACHE/nbxmpp-venv"
if ! "$venv/bin/python" -c "import nbxmpp, sys; sys.exit(nbxmpp.__version__ != '$NBXMPP_VERSION')" >/dev/null 2>&1; then
    echo "Installing nbxmpp $NBXMPP_VERSION into $venv"
    rm -rf "$venv"
    /usr/bin/python3 -m venv --system-site-packages "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "nbxmpp==$NBXMPP_VERSION"
fi
exit 0
