cd /work/main
IN=/tmp/rbench/n10000000/input
for v in "$@"; do
  rm -rf /tmp/rbench/prof/scratch; mkdir -p /tmp/rbench/prof/scratch
  l0=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -f "TIME $v wall=%e user=%U sys=%S maxrss_kib=%M" .venv/bin/python /tmp/rbench/prof/variants.py $v $IN /tmp/rbench/prof/scratch 2>&1 | grep -v "^\s*$" | tail -3
  echo "LOAD $v $l0 -> $(cut -d' ' -f1 /proc/loadavg)"
done
