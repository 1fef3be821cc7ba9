#!/usr/bin/env bash
# make tools: the pulumi and terraform CLIs the IaC engines drive, built from
# the Go module proxy into ~/.cache/calclab/bin once and reused after that.
# A pulumi or terraform already on PATH is used instead when new enough.
set -euo pipefail

PULUMI_VERSION=3.276.0
TERRAFORM_VERSION=1.5.7
TERRAFORM_MIN=1.5.0
BIN=${CALCLAB_TOOLS_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/calclab/bin}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
mkdir -p "$BIN"

# ver_ge A B: version A >= B (dotted numbers, leading v ignored)
ver_ge() {
	[ "$(printf '%s\n%s\n' "${2#v}" "${1#v}" | sort -V | head -n1)" = "${2#v}" ]
}

pulumi_version() { "$1" version 2>/dev/null | head -n1 | tr -d '[:space:]'; }
terraform_version() { "$1" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([^"]*\)".*/\1/p' | head -n1; }

# first_on_path NAME: the first NAME on PATH that is not our own cache copy
first_on_path() {
	local IFS=: d
	for d in $PATH; do
		[ -n "$d" ] && [ "$d" != "$BIN" ] && [ -x "$d/$1" ] && { echo "$d/$1"; return 0; }
	done
	return 1
}

build_pulumi() {
	(cd "$ROOT/tools/pulumi" && "$GO" build \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
		-o "$BIN/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
	mv "$BIN/pulumi.tmp" "$BIN/pulumi"
}

# go install pkg@version ignores the current module and its go.mod.
build_terraform() { GOBIN="$BIN" "$GO" install "github.com/hashicorp/terraform@v$TERRAFORM_VERSION"; }

# ensure NAME MIN WANT: NAME >= MIN from PATH, else our cached build of
# version WANT, else build it (NAME_version and build_NAME do the work).
ensure() {
	local name=$1 min=$2 want=$3 p v t0
	t0=$(date +%s)
	if p=$(first_on_path "$name") && v=$("${name}_version" "$p") && [ -n "$v" ] && ver_ge "$v" "$min"; then
		echo "tools: $name $v on PATH ($p)"
	elif [ -x "$BIN/$name" ] && [ "$("${name}_version" "$BIN/$name")" = "$want" ]; then
		echo "tools: $name $want (cached in $BIN)"
	else
		echo "tools: building $name $want from the module proxy into $BIN (once; several CPU-minutes)"
		"build_$name"
		echo "tools: $name $("${name}_version" "$BIN/$name") built in $(($(date +%s) - t0))s"
	fi
}

ensure pulumi "$PULUMI_VERSION" "v$PULUMI_VERSION"
ensure terraform "$TERRAFORM_MIN" "$TERRAFORM_VERSION"
