# Round-trip throughput of `SELECT <generator>;` relative to `SELECT 1` (called by bench/run.sh
# with out, dat and subtitle set). dat: "label" ratio
set terminal pngcairo size 1000,520 font "DejaVu Sans,11"
set output out
set title "Round trip: SELECT <generator>; throughput relative to SELECT 1\n{/*0.8 ".subtitle."}"
set xrange [0:1.12]
set yrange [-0.6:*] reverse
set xlabel "ratio of transactions per second to SELECT 1 (higher is better)"
set ytics nomirror scale 0 noenhanced
set xtics 0.1 nomirror
set grid xtics lc rgb "#dddddd"
set border 3
unset key
set style fill solid 0.85 noborder
set lmargin 40
set arrow from 0.97, graph 0 to 0.97, graph 1 nohead dt 2 lw 1.5 lc rgb "#e15759"
set label "target for snowflake\\_nextval(): 0.97" at 0.96, graph 1.03 right tc rgb "#e15759" font ",9"
plot dat using ($2/2):0:($2/2):(0.35):($0 == 1 ? 0xf28e2b : 0x4e79a7):yticlabels(1) with boxxyerror lc rgb variable, \
     ''  using ($2+0.01):0:(sprintf("%.3f", $2)) with labels left font ",10"
