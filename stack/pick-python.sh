#!/usr/bin/env bash
# Prints the interpreter `make setup` builds the virtualenv with: the operating system's own Python
# (3.11 or newer, with venv) when it has one, else `python3` from PATH.
#
# Why not simply `python3`: the service's image runs a distribution's or python.org's optimized build
# (profile-guided and link-time optimized), and so should the tests and benchmarks. Debian's
# /usr/bin/python3 is such a build, statically linked; an interpreter built by pyenv with default
# options is not (no PGO/LTO, libpython as a shared library) and runs the hot path about a fifth
# slower (bench/README.md, "The interpreter"). `make PYTHON=/path/to/python3 setup` overrides this.
set -euo pipefail

usable() {
  "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

for candidate in /usr/bin/python3 /usr/local/bin/python3; do
  if [ -x "$candidate" ] && usable "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done
echo python3
