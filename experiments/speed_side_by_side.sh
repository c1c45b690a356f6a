#!/bin/sh
# Issue 17's side-by-side table: the official TF1 graph, the package before (a checkout of 2484e1b) and after (this
# checkout), invocations alternating, on a quiet machine. Only calls `waveunet bench` and the official tool
# (../shared/tools/official_speed/README.md says how to make OFFICIAL and TFK).
#
#   experiments/speed_side_by_side.sh OFFICIAL TFK BEFORE [ROUNDS] > side_by_side.log
#
# BEFORE: e.g. `git worktree add /tmp/before 2484e1b` (run from inside it with this checkout's .venv, so that its
# waveunet_tf is the one imported).
# Each line of the log names what ran; take the medians per kind over the rounds.
set -eu
OFFICIAL=$1 TFK=$2 BEFORE=$3 ROUNDS=${4:-3}
PY=$(pwd)/.venv/bin/python
TOOLS=../shared/tools/official_speed
export TF_CPP_MIN_LOG_LEVEL=2
i=1
while [ "$i" -le "$ROUNDS" ]; do
  echo "round $i official-inference $(PYTHONPATH=$TFK $PY $TOOLS/bigwin.py "$OFFICIAL" 1048576 2>/dev/null | tail -1)"
  echo "round $i before-inference $(cd "$BEFORE" && $PY -m waveunet_tf.cli bench inference --variant M4 --json 2>/dev/null)"
  echo "round $i after-inference $($PY -m waveunet_tf.cli bench inference --variant M4 --json 2>/dev/null)"
  echo "round $i official-train $(PYTHONPATH=$TFK $PY $TOOLS/timing.py "$OFFICIAL" 16 2>/dev/null | grep 'train step')"
  echo "round $i before-train $(cd "$BEFORE" && $PY -m waveunet_tf.cli bench train --variant M4 --json 2>/dev/null)"
  echo "round $i after-train $($PY -m waveunet_tf.cli bench train --variant M4 --json 2>/dev/null)"
  i=$((i + 1))
done
# peak memory, once each: a 10-minute 44.1 kHz song with M4 and with M5-HighSR
echo "after-memory-M4 $($PY -m waveunet_tf.cli bench inference --variant M4 --seconds 600 --repeats 1 --rate 44100 --json 2>/dev/null)"
echo "after-memory-M5-HighSR $($PY -m waveunet_tf.cli bench inference --variant M5-HighSR --seconds 600 --repeats 1 --rate 44100 --json 2>/dev/null)"
