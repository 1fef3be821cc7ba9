#!/usr/bin/env bash
# Run the Postman collection against a calclab lab.
#
#   scripts/newman.sh [extra newman options, e.g. --folder Calculator]
#
# Expects bin/master, bin/slave and bin/lab to be built (`make newman` builds
# them first). Starts the lab with `bin/lab up`, runs newman, and always stops
# the lab again with `bin/lab down`, also when something fails. Exits with
# newman's status; on failure the last 50 lines of every node's log are shown.
#
# If something already answers on 127.0.0.1:5000 the script refuses to run,
# unless NEWMAN_USE_RUNNING=1: then the collection runs against that lab, which
# is neither started nor stopped.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

COLLECTION=postman/calclab.postman_collection.json
ENVIRONMENT=postman/local.postman_environment.json
MASTER_HOST=127.0.0.1
MASTER_PORT=5000
LAB=bin/lab

say() { printf 'newman.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

for b in bin/master bin/slave bin/lab; do
	[[ -x $b ]] || die "$b is missing: run 'make build' first (or 'make newman', which builds)"
done
for f in "$COLLECTION" "$ENVIRONMENT"; do
	[[ -f $f ]] || die "$f is missing"
done

# newman from make deps' node_modules (pinned in package-lock.json), else from PATH; never a download.
if [[ -x node_modules/.bin/newman ]]; then
	NEWMAN=(node_modules/.bin/newman)
elif command -v newman >/dev/null 2>&1; then
	NEWMAN=(newman)
else
	die "newman is not installed: run 'make deps' (npm ci of the pinned package.json)"
fi

# answering reports whether anything accepts connections on the master's port.
answering() {
	(exec 3<>"/dev/tcp/$MASTER_HOST/$MASTER_PORT") 2>/dev/null
}

started=0

dump_logs() {
	local node
	for node in $("$LAB" validate 2>/dev/null | awk 'NR > 1 && NF { print $1 }'); do
		printf '\n===== last 50 lines of the %s log =====\n' "$node" >&2
		"$LAB" logs "$node" 2>&1 | tail -n 50 >&2 || true
	done
}

on_exit() {
	local rc=$?
	trap - EXIT
	if [[ $started == 1 ]]; then
		if [[ $rc != 0 ]]; then
			dump_logs
		fi
		say "stopping the lab"
		"$LAB" down >&2 || say "bin/lab down failed"
	elif [[ $rc != 0 && ${NEWMAN_USE_RUNNING:-} == 1 ]] && answering; then
		dump_logs
	fi
	exit "$rc"
}
trap on_exit EXIT
# Make an interrupt or a kill run the EXIT trap (so the lab is stopped).
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

if answering; then
	if [[ ${NEWMAN_USE_RUNNING:-} != 1 ]]; then
		die "something already answers on $MASTER_HOST:$MASTER_PORT (a lab left running? stop it with 'bin/lab down'), or set NEWMAN_USE_RUNNING=1 to run the collection against it"
	fi
	say "NEWMAN_USE_RUNNING=1: using the lab already answering on $MASTER_HOST:$MASTER_PORT (it is left running)"
else
	say "starting the lab"
	started=1
	"$LAB" up
fi

rc=0
# A lab run with a token (lab.yaml's, or the one `lab up` generates into
# its state dir) hands it to the collection, which sends it on every request.
token_args=()
if [[ -n ${CALCLAB_TOKEN:-} ]]; then
	token_args=(--env-var "token=$CALCLAB_TOKEN")
elif [[ -s .lab/token ]]; then
	token_args=(--env-var "token=$(<.lab/token)")
fi
"${NEWMAN[@]}" run "$COLLECTION" -e "$ENVIRONMENT" "${token_args[@]}" --bail --reporters cli "$@" || rc=$?
if [[ $rc != 0 ]]; then
	say "newman failed (exit status $rc)"
fi
exit "$rc"
