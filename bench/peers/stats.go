package main

import (
	"math"
	"slices"
	"time"
)

// summary describes the samples of one cell (one peer, one metric) taken
// across repetitions.
type summary struct {
	N      int     `json:"n"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// CV is the coefficient of variation, the sample standard deviation
	// divided by the mean: how much the repetitions disagree. 0 when N < 2.
	CV float64 `json:"cv"`
}

// summarize returns the summary of samples, which it does not change.
func summarize(samples []float64) summary {
	if len(samples) == 0 {
		return summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	sum := summary{N: len(s), Min: s[0], Max: s[len(s)-1], Median: median(s)}
	if len(s) < 2 {
		return sum
	}
	var mean float64
	for _, v := range s {
		mean += v
	}
	mean /= float64(len(s))
	var ss float64
	for _, v := range s {
		ss += (v - mean) * (v - mean)
	}
	if mean != 0 {
		sum.CV = math.Sqrt(ss/float64(len(s)-1)) / math.Abs(mean)
	}
	return sum
}

// median returns the median of sorted values.
func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

// percentile returns the p-th percentile (0 < p ≤ 100) of sorted latencies,
// by the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}
