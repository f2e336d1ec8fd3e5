#!/usr/bin/env bash
# Carry the full-data runs' resume state (checkpoints, not tracked on main) between sessions.
#   bash experiments/air/state.sh save      # snapshot experiments/air/results/full into branch air-full-state
#   bash experiments/air/state.sh restore   # unpack that snapshot over experiments/air/results/full
# The branch holds one parentless commit, replaced at every save, so old checkpoints do not pile
# up in the repository's history. Results that matter (metrics, train.json, tables) are committed
# on main as they arrive; this branch only lets an interrupted 500-epoch run continue exactly.
set -euo pipefail
cd "$(dirname "$0")/../.."
# another experiment carries its own folder by setting these (experiments/air/fidelity_state.sh)
DIR=${STATE_DIR:-experiments/air/results/full}
# where a snapshot saved before the results/ layout (docs/design.md, "Layout") holds the folder
if [ -n "${STATE_DIR:-}" ]; then OLD_DIR=${STATE_OLD_DIR:-$DIR}; else OLD_DIR=${STATE_OLD_DIR:-experiments/air/out/full}; fi
BRANCH=${STATE_BRANCH:-air-full-state}
LABEL=${STATE_LABEL:-full-data AIR}
case "${1:-}" in
  save)
    index=$(mktemp); rm -f "$index"
    GIT_INDEX_FILE=$index git add -f -- "$DIR"
    GIT_INDEX_FILE=$index git rm -q --cached -r --ignore-unmatch -- "$DIR/**/.lock" "$DIR/.worker.lock" "$DIR/*.log" \
      "$DIR/**/.*.tmp" >/dev/null
    tree=$(GIT_INDEX_FILE=$index git write-tree)
    rm -f "$index"
    commit=$(echo "$LABEL resume state, $(date -u +%FT%TZ)" | git commit-tree "$tree")
    git update-ref "refs/heads/$BRANCH" "$commit"
    echo "saved $DIR into $BRANCH ($commit)";;
  restore)
    git rev-parse --verify -q "$BRANCH" >/dev/null || { echo "no branch $BRANCH: nothing to restore" >&2; exit 1; }
    if git cat-file -e "$BRANCH:$DIR" 2>/dev/null; then src=$DIR; else src=$OLD_DIR; fi
    git cat-file -e "$BRANCH:$src" 2>/dev/null || { echo "$BRANCH holds no snapshot of $DIR" >&2; exit 1; }
    git archive --prefix="$DIR/" "$BRANCH:$src" | tar -x
    echo "restored $DIR from $BRANCH:$src";;
  *) echo "usage: $0 save|restore" >&2; exit 2;;
esac
