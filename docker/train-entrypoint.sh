#!/usr/bin/env bash
# The training images' entry point: TensorBoard on the runs folder in the background, then the
# command (seg-train yolo ...). The container's exit status is the command's; TensorBoard stops
# when the command ends. SIGTERM (docker stop), SIGINT (Ctrl-C, docker kill -s INT) and SIGHUP are
# passed on to the command, so a training stops the way it does outside a container.
#
#   TENSORBOARD=off          no TensorBoard (also when the command is itself a TensorBoard)
#   TENSORBOARD_LOGDIR=DIR   what it shows [/trainings]
#   TENSORBOARD_PORT=PORT    its port inside the container [6006]
set -uo pipefail

if [[ $# -eq 0 ]]; then
    set -- seg-train --help
fi

tensorboard_pid=""
command_pid=""

stop_tensorboard() {
    if [[ -n "$tensorboard_pid" ]] && kill -0 "$tensorboard_pid" 2>/dev/null; then
        kill -TERM "$tensorboard_pid" 2>/dev/null
        wait "$tensorboard_pid" 2>/dev/null
    fi
    tensorboard_pid=""
}

# shellcheck disable=SC2329  # called by the traps below
pass_on() {  # $1: the signal the entry point received
    # (on a terminal, Ctrl-C reaches the command directly too: Python folds two that arrive together)
    if [[ -n "$command_pid" ]]; then
        kill -"$1" "$command_pid" 2>/dev/null
    fi
}

trap 'pass_on INT' INT
trap 'pass_on TERM' TERM
trap 'pass_on HUP' HUP
trap stop_tensorboard EXIT

tensorboard=${TENSORBOARD:-on}
case "$1 ${2:-}" in
    "seg-train tensorboard" | tensorboard\ *) tensorboard=off ;;
esac
case "${tensorboard,,}" in
    off | 0 | false | no) ;;
    *)
        # in its own session where setsid exists: a Ctrl-C meant for the command does not reach it
        launcher=()
        if command -v setsid >/dev/null; then
            launcher=(setsid)
        fi
        "${launcher[@]}" seg-train tensorboard "${TENSORBOARD_LOGDIR:-/trainings}" \
            --host 0.0.0.0 --port "${TENSORBOARD_PORT:-6006}" </dev/null &
        tensorboard_pid=$!
        ;;
esac

# A background job of a shell without job control starts with SIGINT and SIGQUIT ignored (and
# Python then never raises KeyboardInterrupt): the subshell restores them before the exec. Its
# standard input stays the container's, so an interactive command (bash) works.
(
    trap - INT QUIT TERM HUP
    exec "$@"
) <&0 &
command_pid=$!

# wait returns early when a trapped signal arrives: wait again until the command is gone
while kill -0 "$command_pid" 2>/dev/null; do
    wait "$command_pid"
done
wait "$command_pid"
status=$?
stop_tensorboard
exit "$status"
