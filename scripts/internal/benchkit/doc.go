// Package benchkit is what the calclab benchmark programs (scripts/benchcalc
// and scripts/benchmandel) share: a master and two slaves started as child
// processes on free loopback ports, with their logs in a temp dir; CPU
// accounting from /proc; latency statistics; and the report's header,
// tables and Markdown output.
//
// Every message it prints to stderr starts with the program's name, given
// to NewCluster. Exit codes, for both programs: ExitOK, ExitFailed,
// ExitUsage and ExitInterrupted.
package benchkit
