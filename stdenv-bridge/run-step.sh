#!/usr/bin/bash
# The driver of every bridge step. ns-run runs it inside the chain's final system (the flattened
# .#live-bootstrap, chrooted) as `bash run-step.sh STEP-SCRIPT CHECKER`, with:
#   out        the step's own store path (bind-mounted writable at its own path), the prefix
#   name, version, target            from stdenv-bridge/members.json
#   src        the step's first source in /external/distfiles (srcs: all of them)
#   <input>    the store path of each earlier step it names in "inputs" ("-" becomes "_"),
#              bind-mounted read-only at its own path
#   version_<step>                   the version of each input and of each step named in
#                                    "versions" ("-" becomes "_")
#   bins, links, step_bin            steps taken from the chain (see from-chain.sh)
# The step script defines bridge_build; it runs in /bridge/build, a scratch directory outside
# every output. Afterwards the checker refuses anything in $out that would not run from the store
# inside a plain Nix sandbox.
set -eu
script=$1
checker=$2

JOBS=${NIX_BUILD_CORES:-1}
if [ "$JOBS" = 0 ]; then JOBS=$(nproc); fi
export JOBS
export LC_ALL=C
# configure scripts re-execute themselves and write #! lines with these
export CONFIG_SHELL=/usr/bin/bash SHELL=/usr/bin/bash
umask 022

cd /bridge/build
# shellcheck source=/dev/null
. "$script"
mkdir -p "$out"
bridge_build
cd /
bash "$checker" "$name" "$out"
echo "bridge: $name $version: done"
