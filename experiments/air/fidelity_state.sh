#!/usr/bin/env bash
# Carry fidelity.py's resume state (checkpoints *.pt, git-ignored) between sessions (AIR issue 32):
#   bash experiments/air/fidelity_state.sh save      # snapshot experiments/air/results/fidelity into branch air-fidelity-state
#   bash experiments/air/fidelity_state.sh restore   # unpack it over experiments/air/results/fidelity
#                                                    (a snapshot saved under the old experiments/air/fidelity too)
# state.sh does the work (one parentless commit on the branch, replaced at every save); results are
# committed on main as they arrive. Safe while the worker runs: it replaces every file atomically.
set -euo pipefail
STATE_DIR=experiments/air/results/fidelity STATE_OLD_DIR=experiments/air/fidelity STATE_BRANCH=air-fidelity-state STATE_LABEL="AIR fidelity (issue 32)" \
  exec bash "$(dirname "$0")/state.sh" "$@"
