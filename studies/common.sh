# Sourced by the study scripts: run from the repository root, the `sphere` executable, the shared
# study settings, and where the runs go (local Ray on CPUS cores, or the cluster at ADDRESS).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SPHERE=${SPHERE:-.venv/bin/sphere}
PYTHON=${PYTHON:-.venv/bin/python}
CONFIG=${CONFIG:-studies/mechanism.json}
where=(--num-cpus "${CPUS:-2}")
if [[ -n "${ADDRESS:-}" ]]; then where=(--address "$ADDRESS"); fi
