package benchkit

import (
	"slices"
)

// Percentile is the p-th percentile (0 < p <= 100) of sorted values by
// nearest rank; the zero value when there are none.
func Percentile[T any](sorted []T, p float64) T {
	var zero T
	if len(sorted) == 0 {
		return zero
	}
	i := int(float64(len(sorted))*p/100+0.999999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Median is the median of unsorted values (the mean of the two middle
// ones for an even count); 0 when there are none.
func Median[T ~int64 | ~float64](vs []T) T {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
