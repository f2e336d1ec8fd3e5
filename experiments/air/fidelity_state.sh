#!/usr/bin/env bash
# Carry fidelity.py's resume state (checkpoints *.pt, git-ignored) between sessions (AIR issue 32).
#   bash experiments/air/fidelity_state.sh save      # snapshot experiments/air/fidelity into branch air-fidelity-state
#   bash experiments/air/fidelity_state.sh restore   # unpack that snapshot over experiments/air/fidelity
# As state.sh: the branch holds one parentless commit, replaced at every save (old checkpoints do not
# pile up in history). Results (per_image/, estimators/, runs/*/train.json, table.md) are committed
# on the working branch as they arrive; this branch only lets an interrupted run continue exactly.
# Safe while the worker runs: every file it writes is replaced atomically.
set -euo pipefail
cd "$(dirname "$0")/../.."
DIR=experiments/air/fidelity
BRANCH=air-fidelity-state
case "${1:-}" in
  save)
    index=$(mktemp); rm -f "$index"
    GIT_INDEX_FILE=$index git add -f -- "$DIR"
    GIT_INDEX_FILE=$index git rm -q --cached -r --ignore-unmatch -- "$DIR/**/.lock" "$DIR/.worker.lock" "$DIR/*.log" \
      "$DIR/**/.*.tmp" >/dev/null
    tree=$(GIT_INDEX_FILE=$index git write-tree)
    rm -f "$index"
    commit=$(echo "AIR fidelity (issue 32) resume state, $(date -u +%FT%TZ)" | git commit-tree "$tree")
    git update-ref "refs/heads/$BRANCH" "$commit"
    echo "saved $DIR into $BRANCH ($commit)";;
  restore)
    git rev-parse --verify -q "$BRANCH" >/dev/null || { echo "no branch $BRANCH: nothing to restore" >&2; exit 1; }
    git archive "$BRANCH" -- "$DIR" | tar -x
    echo "restored $DIR from $BRANCH";;
  *) echo "usage: $0 save|restore" >&2; exit 2;;
esac
