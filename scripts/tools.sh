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

t0=$(date +%s)
if p=$(first_on_path pulumi) && v=$(pulumi_version "$p") && [ -n "$v" ] && ver_ge "$v" "$PULUMI_VERSION"; then
	echo "tools: pulumi $v on PATH ($p)"
elif [ -x "$BIN/pulumi" ] && [ "$(pulumi_version "$BIN/pulumi")" = "v$PULUMI_VERSION" ]; then
	echo "tools: pulumi v$PULUMI_VERSION (cached in $BIN)"
else
	echo "tools: building pulumi v$PULUMI_VERSION from the module proxy into $BIN (once; several CPU-minutes)"
	(cd "$ROOT/tools/pulumi" && "$GO" build \
		-ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" \
		-o "$BIN/pulumi.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
	mv "$BIN/pulumi.tmp" "$BIN/pulumi"
	echo "tools: pulumi $(pulumi_version "$BIN/pulumi") built in $(($(date +%s) - t0))s"
fi

t1=$(date +%s)
if p=$(first_on_path terraform) && v=$(terraform_version "$p") && [ -n "$v" ] && ver_ge "$v" "$TERRAFORM_MIN"; then
	echo "tools: terraform $v on PATH ($p)"
elif [ -x "$BIN/terraform" ] && [ "$(terraform_version "$BIN/terraform")" = "$TERRAFORM_VERSION" ]; then
	echo "tools: terraform $TERRAFORM_VERSION (cached in $BIN)"
else
	echo "tools: building terraform v$TERRAFORM_VERSION from the module proxy into $BIN (once; several CPU-minutes)"
	# go install pkg@version ignores the current module and its go.mod.
	GOBIN="$BIN" "$GO" install "github.com/hashicorp/terraform@v$TERRAFORM_VERSION"
	echo "tools: terraform $(terraform_version "$BIN/terraform") built in $(($(date +%s) - t1))s"
fi
