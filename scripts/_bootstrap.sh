# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo. Leaves the shell in the repo root with:
#   - .venv holding an editable install of ".[dev]" (reinstalled only when pyproject.toml changes),
#   - redis-server 7+ on PATH (installed with apt-get when missing and we are root),
#   - with _relier_need_browser=1 (scripts/test): Debian's chromium, installed the same way.
# Silent when everything is already in place. Any failure exits with one line saying what to do.

_relier_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$_relier_root" || exit 1

_relier_say() { printf 'relier: %s\n' "$*" >&2; }
_relier_die() { _relier_say "$*"; exit 1; }
_relier_is_root() { [ "$(id -u)" = "0" ]; }

# Runs apt-get quietly and non-interactively (CI has no stdin); prints apt's output only on failure.
_relier_apt_install() {
    local log
    log="$(mktemp)"
    if DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >"$log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
            </dev/null >>"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    tail -n 20 "$log" >&2
    rm -f "$log"
    return 1
}

# --- Python >= 3.11 --------------------------------------------------------------------
_relier_python=""
for _relier_candidate in python3 python3.12 python3.11; do
    # pyenv shims exist for versions that are not selected, so run the candidate, not just find it.
    if command -v "$_relier_candidate" >/dev/null 2>&1 &&
        "$_relier_candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        _relier_python="$_relier_candidate"
        break
    fi
done
[ -n "$_relier_python" ] ||
    _relier_die "Python 3.11+ is required; install it with: sudo apt-get install -y python3 python3-venv"

# --- .venv -------------------------------------------------------------------------------
# An existing .venv is never deleted: it may be someone's working environment.
if [ ! -e .venv ]; then
    _relier_say "creating .venv with $_relier_python"
    if ! "$_relier_python" -m venv .venv >/dev/null 2>&1; then
        # Debian ships venv without ensurepip unless python3-venv is installed; the failed
        # attempt leaves a half-made .venv (ours, just created) behind.
        rm -rf .venv
        if _relier_is_root && command -v apt-get >/dev/null 2>&1; then
            _relier_say "installing python3-venv with apt-get"
            _relier_apt_install python3-venv ||
                _relier_die "apt-get install python3-venv failed (output above)"
            "$_relier_python" -m venv .venv >/dev/null 2>&1 || {
                rm -rf .venv
                _relier_die "'$_relier_python -m venv .venv' failed; install python3-venv, then re-run"
            }
        else
            _relier_die "cannot create .venv; install venv support with: sudo apt-get install -y python3-venv"
        fi
    fi
fi
.venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 ||
    _relier_die "$_relier_root/.venv is broken or older than Python 3.11; remove it (rm -rf .venv) and re-run"

# --- editable install, redone only when pyproject.toml changes -----------------------------
_relier_stamp=.venv/.relier-pyproject.sha256
_relier_sha="$(.venv/bin/python -c \
    'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
if [ "$(cat "$_relier_stamp" 2>/dev/null)" != "$_relier_sha" ]; then
    _relier_say "installing relier[dev] into .venv (pyproject.toml changed)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]" </dev/null ||
        _relier_die "pip install -e '.[dev]' failed (output above)"
    printf '%s\n' "$_relier_sha" >"$_relier_stamp"
fi

# --- redis-server >= 7 -------------------------------------------------------------------
# The tests and the demo start their own redis-server on a free port; only the binary is
# needed, never a system service (e.g. the one Debian's package starts on port 6379).
_relier_redis_major() {
    local bin="${RELIER_TEST_REDIS_SERVER:-redis-server}" version
    command -v "$bin" >/dev/null 2>&1 || return 1
    # "Redis server v=7.0.15 sha=..." -> 7
    version="$("$bin" --version 2>/dev/null | sed -n 's/.*v=\([0-9][0-9]*\)\..*/\1/p')"
    [ -n "$version" ] && [ "$version" -ge 7 ]
}
_relier_redis_hint="relier: redis-server 7+ is required; install it with: sudo apt-get install -y redis-server"
if ! _relier_redis_major; then
    if [ -n "${RELIER_TEST_REDIS_SERVER:-}" ]; then
        _relier_die "RELIER_TEST_REDIS_SERVER=$RELIER_TEST_REDIS_SERVER is not a redis-server 7+ binary"
    fi
    if _relier_is_root && command -v apt-get >/dev/null 2>&1; then
        _relier_say "installing redis-server with apt-get"
        if ! _relier_apt_install redis-server; then
            echo "$_relier_redis_hint" >&2
            exit 1
        fi
        hash -r
    fi
    if ! _relier_redis_major; then
        echo "$_relier_redis_hint" >&2
        exit 1
    fi
fi

# --- Chromium, for the dashboard's browser test ---------------------------------------------
# Only when the sourcing script asks (scripts/test sets _relier_need_browser=1; the demo does
# not). Debian's package: Playwright drives /usr/bin/chromium (or $RELIER_TEST_CHROMIUM) and
# never downloads a browser of its own.
if [ "${_relier_need_browser:-0}" = "1" ]; then
    _relier_chromium="${RELIER_TEST_CHROMIUM:-/usr/bin/chromium}"
    _relier_chromium_hint="relier: Chromium is required (tests/adapters/test_dashboard_browser.py); install it with: sudo apt-get install -y chromium"
    if ! command -v "$_relier_chromium" >/dev/null 2>&1; then
        if [ -n "${RELIER_TEST_CHROMIUM:-}" ]; then
            _relier_die "RELIER_TEST_CHROMIUM=$RELIER_TEST_CHROMIUM is not an executable Chromium"
        fi
        if _relier_is_root && command -v apt-get >/dev/null 2>&1; then
            _relier_say "installing chromium with apt-get"
            if ! _relier_apt_install chromium; then
                echo "$_relier_chromium_hint" >&2
                exit 1
            fi
            hash -r
        fi
        if ! command -v "$_relier_chromium" >/dev/null 2>&1; then
            echo "$_relier_chromium_hint" >&2
            exit 1
        fi
    fi
fi

unset _relier_candidate _relier_stamp _relier_sha _relier_redis_hint _relier_chromium _relier_chromium_hint
