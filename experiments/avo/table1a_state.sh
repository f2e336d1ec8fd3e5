#!/usr/bin/env bash
# Carry table1a.py's resume state (checkpoints *.pt, git-ignored) between machines (AVO Table 1a, issue 33):
#   bash experiments/avo/table1a_state.sh save      # snapshot experiments/avo/results/table1a into branch avo-table1a-state
#   bash experiments/avo/table1a_state.sh restore   # unpack that snapshot over experiments/avo/results/table1a
# experiments/air/state.sh does the work (one parentless commit on the branch, replaced at every save);
# results are committed on the working branch as they arrive. Safe while the worker runs: it replaces
# every file atomically.
set -euo pipefail
STATE_DIR=experiments/avo/results/table1a STATE_BRANCH=avo-table1a-state STATE_LABEL="AVO Table 1a (issue 33)" \
  exec bash "$(dirname "$0")/../air/state.sh" "$@"
