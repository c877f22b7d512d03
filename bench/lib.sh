# Shared timing helpers of the bench scripts (sourced, bash). Timing is hyperfine's; this file
# only alternates the rows and collects the results.
#
#   alt_reset                              forget the rows of the previous group
#   alt_row LABEL PREPARE COMMAND          add a row (PREPARE "true" for none); both are split
#                                          into words like hyperfine -N does (no shell)
#   alt_run GROUP ROUNDS RUNS              ROUNDS rounds; in each round every row runs RUNS
#                                          times (1 warm-up) in turn, so slow phases of a shared
#                                          machine hit every row alike. Prints a table and sets
#                                          MED[LABEL] (median ms), CPU[LABEL] (mean user+sys ms)
#   alt_rss GROUP LABEL COMMAND...         peak RSS (KiB), the largest of 3 runs -> RSS[LABEL]
#   bench_note GROUP TEXT                  a free-text line for the report
#
# With BENCH_OUT=file every result is also appended to it as one JSON object per line
# ({"kind": "time"|"rss"|"note"|"timeout", "group", "label", "command", ...}); bench/report.sh
# turns that file into bench/REPORT.md and bench/report.json.

declare -A MED CPU RSS
ALT_LABELS=()
ALT_PREPS=()
ALT_CMDS=()
BENCH_TMP=${BENCH_TMP:-$(mktemp -d /tmp/fk-benchlib.XXXXXX)}

alt_reset() { ALT_LABELS=(); ALT_PREPS=(); ALT_CMDS=(); }

alt_row() { ALT_LABELS+=("$1"); ALT_PREPS+=("$2"); ALT_CMDS+=("$3"); }

alt_run() { # GROUP ROUNDS RUNS
    local group=$1 rounds=$2 runs=$3 r i args
    rm -f "$BENCH_TMP/$group".r*.json
    for r in $(seq 1 "$rounds"); do
        args=()
        for i in "${!ALT_LABELS[@]}"; do args+=(--prepare "${ALT_PREPS[$i]}"); done
        for i in "${!ALT_LABELS[@]}"; do args+=(-n "${ALT_LABELS[$i]}" "${ALT_CMDS[$i]}"); done
        hyperfine -N --style none --warmup 1 --runs "$runs" --export-json "$BENCH_TMP/$group.r$r.json" \
            "${args[@]}" >/dev/null 2>"$BENCH_TMP/$group.err" \
            || { echo "hyperfine failed ($group, round $r):" >&2; cat "$BENCH_TMP/$group.err" >&2; return 1; }
    done
    local cmds=$BENCH_TMP/$group.cmds
    : > "$cmds"
    for i in "${!ALT_LABELS[@]}"; do
        printf '%s\t%s\n' "${ALT_LABELS[$i]}" "${ALT_CMDS[$i]}" >> "$cmds"
    done
    python3 - "$group" "$cmds" "$BENCH_TMP/$group.med" "${BENCH_OUT:-}" "$BENCH_TMP/$group".r*.json <<'EOF'
import json, statistics, sys
group, cmds, med_out, out = sys.argv[1:5]
commands = dict(l.rstrip("\n").split("\t", 1) for l in open(cmds) if l.strip())
rows = {}
for path in sys.argv[5:]:
    for r in json.load(open(path))["results"]:
        row = rows.setdefault(r["command"], {"times": [], "cpu": []})
        row["times"] += r["times"]
        row["cpu"].append((r["user"] + r["system"]) * 1e3)
with open(med_out, "w") as m:
    print("%-58s %10s %21s %5s %8s" % ("row (%s)" % group, "median ms", "min-max ms", "runs", "cpu ms"))
    for label in commands:
        t = sorted(x * 1e3 for x in rows[label]["times"])
        rec = {"kind": "time", "group": group, "label": label, "command": commands[label],
               "median_ms": round(statistics.median(t), 2), "min_ms": round(t[0], 2),
               "max_ms": round(t[-1], 2), "runs": len(t),
               "cpu_ms": round(statistics.mean(rows[label]["cpu"]), 2)}
        print("%-58s %10.1f %10.1f-%-10.1f %5d %8.1f" % (label, rec["median_ms"], rec["min_ms"],
                                                          rec["max_ms"], rec["runs"], rec["cpu_ms"]))
        m.write("%s\t%s\t%s\n" % (label, rec["median_ms"], rec["cpu_ms"]))
        if out:
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
EOF
    local l v c
    while IFS=$'\t' read -r l v c; do MED[$l]=$v; CPU[$l]=$c; done < "$BENCH_TMP/$group.med"
}

alt_rss() { # GROUP LABEL COMMAND...
    local group=$1 label=$2 m=0 r
    shift 2
    for _ in 1 2 3; do
        r=$(/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -n1)
        [ "$r" -gt "$m" ] 2>/dev/null && m=$r
    done
    RSS[$label]=$m
    if [ -n "${BENCH_OUT:-}" ]; then
        jq -cn --arg g "$group" --arg l "$label" --arg c "$*" --argjson k "$m" \
            '{kind: "rss", group: $g, label: $l, command: $c, rss_kib: $k}' >> "$BENCH_OUT"
    fi
}

bench_note() { # GROUP TEXT
    echo "$2"
    if [ -n "${BENCH_OUT:-}" ]; then
        jq -cn --arg g "$1" --arg t "$2" '{kind: "note", group: $g, text: $t}' >> "$BENCH_OUT"
    fi
}

bench_timeout() { # GROUP LABEL LIMIT_S COMMAND
    echo "$2: timed out (> $3 s)"
    if [ -n "${BENCH_OUT:-}" ]; then
        jq -cn --arg g "$1" --arg l "$2" --argjson s "$3" --arg c "$4" \
            '{kind: "timeout", group: $g, label: $l, limit_s: $s, command: $c}' >> "$BENCH_OUT"
    fi
}
