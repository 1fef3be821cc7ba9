#!/usr/bin/env bash
# Install what `make test` needs and is not Go: Debian packages (Chromium for
# the browser test, OpenSSH's sshd for the provisioning tests, nginx for the
# benchmarks' baseline, wrk for bench-calc's independent load generator and
# its script test, iproute2 for a network namespace) when run as root, and the npm test tools pinned in
# package.json / package-lock.json (newman, tree-sitter + its PowerShell
# grammar) into ./node_modules with `npm ci`. Never downloads anything at
# test time: this runs first, once, and is a no-op when everything is there.
#
# Not root and a Debian package missing: prints the one command to run and
# exits 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'test-deps: %s\n' "$*" >&2; }

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# node-gyp builds tree-sitter's native binding.
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# make vagrant-check: Debian's vagrant (and its ruby) validates the Vagrantfile.
command -v vagrant >/dev/null 2>&1 || need+=(vagrant)
# ip: the integration test whose slave's host goes silent runs it in a
# network namespace of its own.
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		say "missing Debian packages; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
		exit 1
	fi
	say "apt-get install ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
stamp=node_modules/.calclab-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
	say "npm ci (newman, tree-sitter, tree-sitter-powershell)"
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json "$stamp"
fi
