#!/usr/bin/env bash
# Prepares everything pdd-agent needs on a fresh Debian-like machine, and is quick when already done:
#   Python >= 3.11 -> .venv/ -> `pip install -e ".[test]"` (only when pyproject.toml changed)
#   -> a Chromium (system, Playwright's own, or installed now) -> a CJK font.
# Sourced by scripts/test and scripts/demo, which then see PDD_AGENT_CHROMIUM (unset when Playwright's
# own downloaded Chromium is to be used). Running it directly (`bash scripts/bootstrap.sh`) also works.
# Never prompts: safe under CI=true with no standard input.
# Testing only: PDD_AGENT_SKIP_SYSTEM_CHROMIUM=1 ignores the system Chromium, to exercise the fallbacks.

if [[ "${BASH_SOURCE[0]}" != "${0}" && $- == *i* ]]; then
    # Sourcing into an interactive shell would leak `set -e` into it and `exit` would close it.
    echo "[bootstrap] run it as: bash scripts/bootstrap.sh (or use scripts/test, scripts/demo)" >&2
    return 1
fi

set -euo pipefail

_bs_root="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
_bs_venv="${_bs_root}/.venv"
_bs_stamp="${_bs_venv}/.pdd-agent-installed"
_bs_apt_updated=0

_bs_say() { printf '[bootstrap] %s\n' "$*"; }
_bs_warn() { printf '[bootstrap] warning: %s\n' "$*" >&2; }
_bs_die() { printf '[bootstrap] error: %s\n' "$*" >&2; exit 1; }
_bs_is_root() { [[ "$(id -u)" == 0 ]]; }
_bs_can_apt() { _bs_is_root && command -v apt-get >/dev/null 2>&1; }

# Runs a command with its output in a log; on failure shows the log's tail. Returns the command's status.
_bs_run_logged() {
    local log status=0
    log="$(mktemp "${TMPDIR:-/tmp}/pdd-bootstrap.XXXXXX")"
    "$@" </dev/null >"${log}" 2>&1 || status=$?
    if [[ ${status} -ne 0 ]]; then
        printf '[bootstrap] failed (exit %s): %s\n' "${status}" "$*" >&2
        tail -n 15 "${log}" | sed 's/^/[bootstrap]   | /' >&2
    fi
    rm -f "${log}"
    return "${status}"
}

_bs_apt_install() {
    if [[ ${_bs_apt_updated} -eq 0 ]]; then
        _bs_say "apt-get update"
        _bs_run_logged env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
        _bs_apt_updated=1
    fi
    _bs_say "apt-get install $*"
    _bs_run_logged env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

_bs_py_ok() {
    "$1" -c 'import sys; raise SystemExit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

# --- Python -----------------------------------------------------------------------------------------
_bs_python=""
for _bs_cand in python3 python3.11 python3.12 python3.13; do
    # A pyenv shim exists for versions that are not selected: running it is the real test.
    if command -v "${_bs_cand}" >/dev/null 2>&1 && _bs_py_ok "${_bs_cand}"; then
        _bs_python="$(command -v "${_bs_cand}")"
        break
    fi
done
[[ -n "${_bs_python}" ]] || _bs_die "no Python >= 3.11 found (tried python3, python3.11, python3.12, python3.13);
  install one, e.g.: sudo apt-get install python3 python3-venv"
_bs_say "python: ${_bs_python} ($("${_bs_python}" -c 'import platform; print(platform.python_version())'))"

# --- virtualenv -------------------------------------------------------------------------------------
_bs_venv_ok() { [[ -x "${_bs_venv}/bin/python" && -x "${_bs_venv}/bin/pip" ]] && _bs_py_ok "${_bs_venv}/bin/python"; }

_bs_make_venv() {
    local log status=0
    log="$(mktemp "${TMPDIR:-/tmp}/pdd-bootstrap.XXXXXX")"
    "${_bs_python}" -m venv "${_bs_venv}" </dev/null >"${log}" 2>&1 || status=$?
    if [[ ${status} -ne 0 ]]; then
        rm -rf -- "${_bs_venv}"
        if grep -qi ensurepip "${log}"; then status=2; else cat "${log}" >&2; fi
    fi
    rm -f "${log}"
    return "${status}"
}

if _bs_venv_ok; then
    _bs_say "venv: ${_bs_venv} (exists)"
else
    [[ -e "${_bs_venv}" ]] && { _bs_warn "${_bs_venv} is incomplete or broken: recreating it"; rm -rf -- "${_bs_venv}"; }
    _bs_status=0
    _bs_make_venv || _bs_status=$?
    if [[ ${_bs_status} -eq 2 ]]; then
        if _bs_can_apt; then
            _bs_say "venv: ensurepip is missing, installing python3-venv"
            _bs_apt_install python3-venv || _bs_die "apt-get install python3-venv failed"
            _bs_status=0
            _bs_make_venv || _bs_status=$?
        else
            _bs_die "'${_bs_python} -m venv' needs ensurepip: sudo apt-get install python3-venv, then run this again"
        fi
    fi
    [[ ${_bs_status} -eq 0 ]] || _bs_die "could not create ${_bs_venv} with ${_bs_python}"
    _bs_venv_ok || _bs_die "${_bs_venv} was created but has no working python/pip"
    _bs_say "venv: ${_bs_venv} (created)"
fi

# --- project install --------------------------------------------------------------------------------
_bs_hash="$("${_bs_venv}/bin/python" -c \
    'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
    "${_bs_root}/pyproject.toml")"
if [[ -f "${_bs_stamp}" && "$(cat "${_bs_stamp}")" == "${_bs_hash}" && -x "${_bs_venv}/bin/pdd-agent" ]]; then
    _bs_say "install: up to date"
else
    _bs_say "install: pip install -e .[test] (pyproject.toml changed or first run)"
    rm -f "${_bs_stamp}"
    PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "${_bs_venv}/bin/pip" install -q -e "${_bs_root}[test]" </dev/null \
        || _bs_die "pip install -e \"${_bs_root}[test]\" failed (see the errors above)"
    printf '%s\n' "${_bs_hash}" >"${_bs_stamp}"
    _bs_say "install: done"
fi

# --- Chromium ---------------------------------------------------------------------------------------
_bs_runs() { [[ -f "$1" && -x "$1" ]] && timeout 30 "$1" --version </dev/null >/dev/null 2>&1; }

_bs_system_chromium() {
    [[ "${PDD_AGENT_SKIP_SYSTEM_CHROMIUM:-}" == 1 ]] && return 1
    local cand path
    for cand in /usr/bin/chromium chromium chromium-browser google-chrome google-chrome-stable; do
        path="$(command -v "${cand}" 2>/dev/null)" || continue
        if _bs_runs "${path}"; then
            printf '%s\n' "${path}"
            return 0
        fi
    done
    return 1
}

# Prints the executable of Playwright's own Chromium (for the installed playwright version) if downloaded.
_bs_playwright_chromium() {
    local path
    path="$(timeout 120 "${_bs_venv}/bin/python" -c '
from playwright.sync_api import sync_playwright
with sync_playwright() as p:
    print(p.chromium.executable_path)
' </dev/null 2>/dev/null)" || return 1
    [[ -n "${path}" && -x "${path}" ]] || return 1
    printf '%s\n' "${path}"
}

_bs_chromium=""
_bs_chromium_kind=""
if [[ -n "${PDD_AGENT_CHROMIUM:-}" ]]; then
    if [[ -f "${PDD_AGENT_CHROMIUM}" && -x "${PDD_AGENT_CHROMIUM}" ]]; then
        _bs_chromium="${PDD_AGENT_CHROMIUM}"
        _bs_chromium_kind="from PDD_AGENT_CHROMIUM"
    else
        _bs_warn "PDD_AGENT_CHROMIUM=${PDD_AGENT_CHROMIUM} is not an executable file: ignoring it"
    fi
fi
if [[ -z "${_bs_chromium}" ]] && _bs_chromium="$(_bs_system_chromium)"; then
    _bs_chromium_kind="system"
fi
if [[ -z "${_bs_chromium}" ]] && _bs_chromium="$(_bs_playwright_chromium)"; then
    _bs_chromium_kind="playwright"
fi
if [[ -z "${_bs_chromium}" ]]; then
    _bs_say "chromium: none found, trying: python -m playwright install chromium (up to 300 s)"
    _bs_t0=${SECONDS}
    if _bs_run_logged timeout 300 "${_bs_venv}/bin/python" -m playwright install chromium \
        && _bs_chromium="$(_bs_playwright_chromium)"; then
        _bs_chromium_kind="playwright, downloaded"
    else
        _bs_say "chromium: playwright install failed after $((SECONDS - _bs_t0)) s"
        if _bs_can_apt; then
            # --no-install-recommends keeps out a desktop (notification daemons...); fonts come explicitly.
            _bs_apt_install chromium fonts-liberation || true
            if _bs_chromium="$(PDD_AGENT_SKIP_SYSTEM_CHROMIUM='' _bs_system_chromium)"; then
                _bs_chromium_kind="system, installed with apt-get"
            fi
        fi
    fi
fi
if [[ -z "${_bs_chromium}" ]]; then
    _bs_die "no Chromium available. Install Chromium: sudo apt-get install chromium fonts-noto-cjk,
  or run: .venv/bin/python -m playwright install --with-deps chromium"
fi
_bs_say "chromium: ${_bs_chromium} (${_bs_chromium_kind})"
if [[ "${_bs_chromium_kind}" == playwright* ]]; then
    unset PDD_AGENT_CHROMIUM  # let Playwright launch its own build
else
    export PDD_AGENT_CHROMIUM="${_bs_chromium}"
fi

# --- CJK font ---------------------------------------------------------------------------------------
_bs_has_cjk() { command -v fc-list >/dev/null 2>&1 && [[ -n "$(fc-list :lang=zh 2>/dev/null)" ]]; }
if _bs_has_cjk; then
    _bs_say "cjk font: ok"
elif _bs_can_apt; then
    if _bs_apt_install fonts-noto-cjk fontconfig && _bs_has_cjk; then
        _bs_say "cjk font: fonts-noto-cjk installed"
    else
        _bs_warn "could not install fonts-noto-cjk: Chinese text in screenshots may show as boxes"
    fi
else
    _bs_warn "no CJK font (fc-list :lang=zh is empty): Chinese text in screenshots may show as boxes;
  install one with: sudo apt-get install fonts-noto-cjk"
fi

unset _bs_cand _bs_status _bs_hash _bs_t0
