package api

import (
	"fmt"
	"time"
)

// MAX_TIME_AHEAD (config.Config.MaxTimeAhead) bounds how far past the
// server's clock the times clients give may be: a retention counts from
// them, so a row dated years ahead would outlive every retention
// (docs/lifecycle.md). The limit is taken once per request.

// aheadLimit is the latest time a request received at now may give under
// MAX_TIME_AHEAD d: now + d, in UTC, cut to the second so that the second
// the 422 names is exactly the last one accepted (a time within that
// second but after it is refused, as "<latest> or earlier" says). on is
// false when d is 0 (the setting is off: any time up to 9999-12-31).
func aheadLimit(now time.Time, d time.Duration) (latest time.Time, on bool) {
	if d <= 0 {
		return time.Time{}, false
	}
	return now.Add(d).UTC().Truncate(time.Second), true
}

// aheadDetail is the detail of the 422 item of a time field past latest
// (aheadLimit's) under MAX_TIME_AHEAD d.
func aheadDetail(field string, d time.Duration, latest time.Time) string {
	return fmt.Sprintf("%s must be at most MAX_TIME_AHEAD (%s) ahead of the server's clock: %s or earlier",
		field, formatAhead(d), latest.Format(time.RFC3339))
}

// formatAhead writes d as an operator writes MAX_TIME_AHEAD: whole days as
// 1d, else whole hours as 36h, else whole minutes as 90m; anything else as
// Go writes a duration (1m30s).
func formatAhead(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
