# Helpers the scripts share; source it from the repository's root:
#   . scripts/lib.sh
# Every script installs what it needs on a fresh Debian machine, and only
# once: these say how, in one place.

# apt_install WHY PACKAGE... — installs Debian packages (options such as
# --no-install-recommends may come among them), with sudo unless root.
apt_install() {
  local why=$1
  shift
  echo "$(basename "$0"): installing $* ($why)" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# need_command COMMAND WHY PACKAGE... — installs the packages unless
# COMMAND is already on the PATH.
need_command() {
  local cmd=$1
  shift
  command -v "$cmd" >/dev/null 2>&1 || apt_install "$@"
}

# The Python tools of the scripts (Selenium, schemathesis, the OpenAPI
# validator), from PyPI, in one venv under target/.
PYTOOLS=target/pytools

# pytool MODULE REQUIREMENT — makes sure the venv can import MODULE,
# installing REQUIREMENT (`name==version`) into it when it cannot.
pytool() {
  local module=$1 req=$2
  if [ -x "$PYTOOLS/bin/python" ] && "$PYTOOLS/bin/python" -c "import $module" 2>/dev/null; then
    return 0
  fi
  echo "$(basename "$0"): installing $req into $PYTOOLS" >&2
  [ -x "$PYTOOLS/bin/python" ] || python3 -m venv "$PYTOOLS"
  "$PYTOOLS/bin/pip" install --quiet --disable-pip-version-check "$req"
}
