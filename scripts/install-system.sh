#!/bin/sh
# Install what Courier needs from Debian: Prosody, the community modules
# (mod_privilege), and venv support for Python.  Idempotent; quiet when done.
set -eu
need=""
command -v prosody >/dev/null 2>&1 || need="$need prosody"
[ -d /usr/lib/prosody/modules/mod_privilege ] || need="$need prosody-modules"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need="$need python3-venv"
# Kannel (bearerbox + smsbox) for SMS fallback: its fake SMSC runs the SMS tests.
[ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ] || need="$need kannel"
# PostgreSQL's server binaries, with --tests only: the tests start their own cluster
# (tests/pgserver.py) for COURIER_TEST_STORE=postgresql and the active/standby tests;
# `make run` never needs it.
tests=""
[ "${1:-}" = "--tests" ] && tests=1
[ -z "$tests" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
# strace, with --tests only: the fault suite injects store faults into a running Courier
# (a read-only store, a slow fsync) without touching its code (tests/faults/test_store_faults.py).
[ -z "$tests" ] || command -v strace >/dev/null 2>&1 || need="$need strace"
[ -z "$need" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "Installing from Debian:$need"
# Do not let the package start a system-wide Prosody on the default ports:
# Courier runs its own, with its own configuration.
created_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    created_policy=1
fi
# Another apt (a second checkout installing at the same time) holds the lock: wait for it.
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
    $need >/dev/null
[ -n "$created_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
# The SMS tests never skip: fail here, not there, when Kannel is missing.
[ -x /usr/sbin/bearerbox ] && [ -x /usr/sbin/smsbox ] || { echo "kannel did not install (bearerbox, smsbox)" >&2; exit 1; }
[ -z "$tests" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "postgresql did not install (initdb)" >&2; exit 1; }
[ -z "$tests" ] || command -v strace >/dev/null 2>&1 || { echo "strace did not install" >&2; exit 1; }
exit 0
