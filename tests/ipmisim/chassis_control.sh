#!/bin/sh
# chassis_control program for ipmi_sim (lan.conf: chassis_control "<this> <statedir>").
#
#   chassis_control.sh <statedir> get power [boot]
#   chassis_control.sh <statedir> set power 0|1 | reset 1 | shutdown 1 |
#                                     boot <dev> | identify <secs> <force>
#
# ipmi_sim runs this synchronously for every Chassis Control / Get Chassis
# Status / Chassis Identify request, so it must be quick (plain sh, no
# python).  Power state lives in <statedir>/power_state ("0"/"1"); every
# change is appended to <statedir>/chassis.log as one JSON object per line
# (simext.c appends its boot-option records to the same file).
# "get" prints "<parm>:<value>" lines; errors go to stdout with exit 1.
dir=$1
op=$2
[ -n "$dir" ] && [ -d "$dir" ] || { echo "no state dir: $dir"; exit 1; }
shift 2
state="$dir/power_state"
log="$dir/chassis.log"

record() {  # one printf => one write(2) with O_APPEND: lines never interleave
    printf '{"ts": %s, %s}\n' "$(date +%s.%N)" "$1" >> "$log"
}

power_now() {
    cat "$state" 2>/dev/null || echo 0
}

case $op in
get)
    for parm in "$@"; do
        case $parm in
        power) echo "power:$(power_now)" ;;
        boot) echo "boot:default" ;;
        *) echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
set)
    while [ $# -gt 0 ]; do
        parm=$1; val=$2
        [ -n "$val" ] || { echo "No value for $parm"; exit 1; }
        shift 2
        case $parm in
        power)
            if [ "$val" = 1 ]; then v=on; else v=off; fi
            echo "$val" > "$state.tmp" && mv "$state.tmp" "$state"
            record "\"op\": \"power\", \"value\": \"$v\""
            ;;
        reset)
            record "\"op\": \"power\", \"value\": \"reset\""
            ;;
        shutdown)
            # Soft (ACPI) shutdown: the OS goes down and the node powers off.
            echo 0 > "$state.tmp" && mv "$state.tmp" "$state"
            record "\"op\": \"power\", \"value\": \"soft\""
            ;;
        boot)
            record "\"op\": \"boot\", \"value\": \"$val\""
            ;;
        identify)
            # ipmi_sim passes "<interval> <force>" as ONE argument.
            set -- $val "$@"
            interval=$1; force=${2:-0}
            shift; [ $# -gt 0 ] && shift
            if [ "$force" = 1 ]; then f=true; else f=false; fi
            record "\"op\": \"identify\", \"interval\": $interval, \"force\": $f"
            ;;
        *)
            echo "Invalid parameter: $parm"; exit 1 ;;
        esac
    done
    ;;
check)
    exit 1 ;;
*)
    echo "Unknown operation: $op"; exit 1 ;;
esac
exit 0
