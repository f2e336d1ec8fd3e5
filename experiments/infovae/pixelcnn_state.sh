#!/usr/bin/env bash
# Carry pixelcnn_table.py's resume state (checkpoints *.pt, git-ignored) between machines (InfoVAE Table 1, issue 33):
#   bash experiments/infovae/pixelcnn_state.sh save      # snapshot experiments/infovae/results/pixelcnn into branch infovae-pixelcnn-state
#   bash experiments/infovae/pixelcnn_state.sh restore   # unpack that snapshot over experiments/infovae/results/pixelcnn
# experiments/air/state.sh does the work (one parentless commit on the branch, replaced at every save);
# results are committed on the working branch as they arrive. Safe while the worker runs: it replaces
# every file atomically.
set -euo pipefail
STATE_DIR=experiments/infovae/results/pixelcnn STATE_BRANCH=infovae-pixelcnn-state STATE_LABEL="InfoVAE PixelCNN table (issue 33)" \
  exec bash "$(dirname "$0")/../air/state.sh" "$@"
