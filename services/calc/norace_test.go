//go:build !race

package calc

const raceEnabled = false
