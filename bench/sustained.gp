# Many IDs at once: IDs issued over time and how far the newest ID leads the clock (called by
# bench/run.sh with out, dir, bound, small and subtitle set). dir/long{1,2,3}.dat: seconds million_ids
# lead_ms; long3 ran with max_drift_ms = small.
set terminal pngcairo size 1000,500 font "DejaVu Sans,11"
set output out
set title "snowflake\\_nextval() at full speed: IDs issued and their lead over the clock\n{/*0.8 ".subtitle."}"
set grid lc rgb "#dddddd"
set xlabel "seconds since the first ID"
set ylabel "IDs issued (millions)"
set y2label "lead of the newest ID over the clock (ms)"
set ytics nomirror
set y2tics
set y2range [0:bound*1.3]
set yrange [0:*]
set key top left box opaque
plot dir."/long1.dat" using 1:2 with lines lw 2 lc rgb "#4e79a7" title "IDs, 1 backend", \
     dir."/long2.dat" using 1:2 with lines lw 2 lc rgb "#59a14f" title "IDs, 2 backends", \
     dir."/long1.dat" using 1:3 axes x1y2 with lines lw 1 dt 3 lc rgb "#4e79a7" title "lead, 1 backend", \
     dir."/long3.dat" using 1:2 with lines lw 2 lc rgb "#b07aa1" title sprintf("IDs, 2 backends, max\\_drift\\_ms %d", small), \
     dir."/long2.dat" using 1:3 axes x1y2 with lines lw 1 dt 3 lc rgb "#59a14f" title "lead, 2 backends", \
     dir."/long3.dat" using 1:3 axes x1y2 with lines lw 1 dt 3 lc rgb "#b07aa1" title "lead, bound 200", \
     bound axes x1y2 with lines dt 2 lc rgb "#e15759" title "default max\\_drift\\_ms", \
     x*4.096 with lines dt 4 lc rgb "#999999" title "4,096 IDs/ms"
