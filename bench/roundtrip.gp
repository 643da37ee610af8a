# Round-trip throughput of `SELECT <generator>;` relative to `SELECT 1` (called by bench/run.sh
# with out, dat and subtitle set). dat: "label" tps_ratio cpu_ratio
set terminal pngcairo size 1000,600 font "DejaVu Sans,11"
set output out
set title "Round trip: SELECT <generator>; throughput relative to SELECT 1\n{/*0.8 ".subtitle."}"
set xrange [0:1.25]
set yrange [-0.6:*] reverse
set xlabel "ratio to SELECT 1 (higher is better)"
set ytics nomirror scale 0 noenhanced
set xtics 0.1 nomirror
set grid xtics lc rgb "#dddddd"
set border 3
set style fill solid 0.85 noborder
set lmargin 40
set arrow from 0.97, graph 0 to 0.97, graph 1 nohead dt 2 lw 1.5 lc rgb "#e15759"
set label "target for snowflake\\_nextval(): 0.97" at 0.96, graph 1.03 right tc rgb "#e15759" font ",9"
set key outside bottom center horizontal
plot dat using (0):0:yticlabels(1) with points ps 0 notitle, \
     ''  using ($2/2):($0-0.19):($2/2):(0.17) with boxxyerror lc rgb "#4e79a7" title "transactions per second", \
     ''  using ($3/2):($0+0.19):($3/2):(0.17) with boxxyerror lc rgb "#f28e2b" title "server CPU per call (inverse)", \
     ''  using ($2+0.01):($0-0.19):(sprintf("%.3f", $2)) with labels left font ",9" notitle, \
     ''  using ($3+0.01):($0+0.19):(sprintf("%.3f", $3)) with labels left font ",9" notitle
