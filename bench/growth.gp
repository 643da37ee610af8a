# Insert growth run: rows/s per batch and primary-key size as the tables grow (called by
# bench/run.sh with out, dir and subtitle set). dir/grow_<key>.dat: million_rows rows_per_s pkey_MiB
set terminal pngcairo size 1100,480 font "DejaVu Sans,11"
set output out
set multiplot layout 1,2 title "Insert growth: INSERT ... SELECT per batch into an audit table\n{/*0.8 ".subtitle."}"
set key top right
set grid lc rgb "#dddddd"
set xlabel "rows in the table (millions)"
set ylabel "rows per second in the batch"
set yrange [0:*]
set format y "%.0s%c"
plot dir."/grow_sf.dat" using 1:2 with linespoints pt 7 ps 0.6 lw 2 lc rgb "#4e79a7" title "snowflake\\_nextval()", \
     dir."/grow_serial.dat" using 1:2 with linespoints pt 5 ps 0.6 lw 2 lc rgb "#59a14f" title "bigserial", \
     dir."/grow_uuid.dat" using 1:2 with linespoints pt 9 ps 0.6 lw 2 lc rgb "#e15759" title "gen\\_random\\_uuid()"
set ylabel "primary-key index (MiB)"
set format y "%.0f"
set key top left
plot dir."/grow_sf.dat" using 1:3 with linespoints pt 7 ps 0.6 lw 2 lc rgb "#4e79a7" title "snowflake\\_nextval()", \
     dir."/grow_serial.dat" using 1:3 with linespoints pt 5 ps 0.6 lw 1 dt 2 lc rgb "#59a14f" title "bigserial", \
     dir."/grow_uuid.dat" using 1:3 with linespoints pt 9 ps 0.6 lw 2 lc rgb "#e15759" title "gen\\_random\\_uuid()"
unset multiplot
