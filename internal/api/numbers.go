package api

import "math"

// JSON has no NaN or Infinity: one such value in an answer makes huma fail
// to marshal it, and the client gets a 200 whose body is an error message.
// Every numeric input has a documented range, chosen so that no sum or
// average the service computes can overflow (measurements.go explains
// elapsed's); finite is the last guard on the figures that are computed
// (averages, unit conversions), for rows stored before those ranges
// existed or written around the API.

// finite is v when it is a finite number; NaN (nothing to average) is 0 and
// an infinity the largest double of its sign.
func finite(v float64) float64 {
	switch {
	case math.IsNaN(v):
		return 0
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}
