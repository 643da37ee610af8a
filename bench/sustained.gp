# Many IDs at once: IDs issued over time and how far the newest ID leads the clock (called by
# bench/run.sh with out, dir, bound, small and subtitle set). dir/long{1,2,3}.dat: seconds
# million_ids lead_ms; long3 ran with max_drift_ms = small.
set terminal pngcairo size 1100,480 font "DejaVu Sans,11"
set output out
set multiplot layout 1,2 title "snowflake\\_nextval() at full speed, sampled every 50 ms\n{/*0.8 ".subtitle."}"
set grid lc rgb "#dddddd"
set xlabel "seconds since the first ID"
set key top left
set ylabel "IDs issued (millions)"
set yrange [0:*]
plot dir."/long1.dat" using 1:2 with lines lw 2 lc rgb "#4e79a7" title "1 backend", \
     dir."/long2.dat" using 1:2 with lines lw 2 lc rgb "#59a14f" title "2 backends", \
     dir."/long3.dat" using 1:2 with lines lw 2 lc rgb "#b07aa1" title sprintf("2 backends, max\\_drift\\_ms %d", small), \
     x*4.096 with lines dt 2 lw 1.5 lc rgb "#e15759" title "4,096 IDs/ms (format limit)"
set ylabel "lead of the newest ID over the clock (ms)"
set yrange [0:bound*1.15]
set key top right
plot dir."/long1.dat" using 1:3 with lines lw 2 lc rgb "#4e79a7" title "1 backend", \
     dir."/long2.dat" using 1:3 with lines lw 2 lc rgb "#59a14f" title "2 backends", \
     dir."/long3.dat" using 1:3 with lines lw 2 lc rgb "#b07aa1" title "2 backends, small bound", \
     bound with lines dt 2 lw 1.5 lc rgb "#e15759" title "max\\_drift\\_ms (default)", \
     small with lines dt 3 lw 1.5 lc rgb "#b07aa1" title "max\\_drift\\_ms (small)"
unset multiplot
