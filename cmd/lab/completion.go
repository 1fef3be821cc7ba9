package main

import (
	"fmt"
	"io"
	"strings"
)

// completeNodes is the hidden command the completion scripts call for
// node names: it prints the nodes of the lab spec, one per line.
const completeNodes = "__nodes"

// nodeVerbs take a NODE as their first argument.
const nodeVerbs = "logs ssh info exec start stop restart"

// completion writes a completion script for a shell.
func completion(w io.Writer, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: lab completion bash|zsh|fish")
	}
	verbs := strings.Join(verbNames(), " ")
	flags := "--file --provider --engine --state-dir --bin-dir --version --help"
	providers, engs := "local qemu hyperv", strings.Join(engineNames(), " ")
	switch args[0] {
	case "bash", "zsh":
		script := fmt.Sprintf(`# lab completion for %[1]s: source <(lab completion %[1]s)
_calclab_lab() {
	local cur prev verb i
	cur="${COMP_WORDS[COMP_CWORD]}"
	prev="${COMP_WORDS[COMP_CWORD-1]}"
	case "$prev" in
	--provider) COMPREPLY=($(compgen -W "%[4]s" -- "$cur")); return ;;
	--engine) COMPREPLY=($(compgen -W "%[5]s" -- "$cur")); return ;;
	--file|--state-dir|--bin-dir|--out) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac
	for ((i = 1; i < COMP_CWORD; i++)); do
		case "${COMP_WORDS[i]}" in
		--file|--provider|--engine|--state-dir|--bin-dir) ((i++)) ;;
		-*) ;;
		*) verb="${COMP_WORDS[i]}"; break ;;
		esac
	done
	if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W "%[3]s" -- "$cur")); return; fi
	if [[ -z "$verb" ]]; then COMPREPLY=($(compgen -W "%[2]s" -- "$cur")); return; fi
	case " %[6]s " in
	*" $verb "*) [[ $((COMP_CWORD - i)) -eq 1 ]] && COMPREPLY=($(compgen -W "$(lab __nodes 2>/dev/null)" -- "$cur")) ;;
	esac
	[[ "$verb" == completion ]] && COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur"))
	[[ "$verb" == help ]] && COMPREPLY=($(compgen -W "%[2]s" -- "$cur"))
}
`, args[0], verbs, flags, providers, engs, nodeVerbs)
		if args[0] == "zsh" {
			script += "autoload -U +X bashcompinit && bashcompinit\n"
		}
		script += "complete -F _calclab_lab lab\n"
		_, err := io.WriteString(w, script)
		return err
	case "fish":
		var b strings.Builder
		b.WriteString("# lab completion for fish: lab completion fish | source\ncomplete -c lab -f\n")
		for _, v := range verbNames() {
			fmt.Fprintf(&b, "complete -c lab -n __fish_use_subcommand -a %s -d %q\n", v, verbsHelpShort(v))
		}
		fmt.Fprintf(&b, "complete -c lab -n '__fish_seen_subcommand_from %s' -a '(lab __nodes 2>/dev/null)'\n", nodeVerbs)
		fmt.Fprintf(&b, "complete -c lab -l provider -x -a '%s'\ncomplete -c lab -l engine -x -a '%s'\n", providers, engs)
		b.WriteString("complete -c lab -l file -r -F\ncomplete -c lab -l state-dir -r -F\ncomplete -c lab -l bin-dir -r -F\ncomplete -c lab -l version\n")
		_, err := io.WriteString(w, b.String())
		return err
	}
	return fmt.Errorf("completion: unknown shell %q: use bash, zsh or fish", args[0])
}

func verbsHelpShort(v string) string {
	h := verbs[v].help
	if i := strings.IndexAny(h, ":;("); i > 0 {
		h = h[:i]
	}
	return strings.TrimSpace(h)
}
