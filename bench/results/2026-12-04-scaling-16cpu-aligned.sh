#!/bin/bash
# old (.scaling, 1041062) vs new (.scaling2, aligned tasks) vs tokio, interleaved
export LD_LIBRARY_PATH=$PWD/.scaling/lib
for rep in 1 2 3; do
  for b in yield_many spawn_many; do
    for w in 1 2 4 8 16; do
      export PX_BENCH_WORKERS=$w
      for side in old new tokio; do
        case $side in
          old) out=$(.scaling/$b 100) ;;
          new) out=$(.scaling2/$b 100) ;;
          tokio) out=$(.scaling/tokio-peer $b mt 100) ;;
        esac
        echo "$b w=$w $side rep=$rep $(grep -o 'ops_per_s=[0-9]*' <<<"$out") $(grep -o 'ops_per_cpu_s=[0-9]*' <<<"$out")"
      done
    done
  done
done
