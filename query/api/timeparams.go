package api

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// parseSearchTimes reads the time range of the search and tag routes as
// Tempo's frontend normalises it: start and end as unix seconds, unix
// nanoseconds (more than 10 digits), fractional seconds or RFC 3339; or
// since (a duration such as 30m, ending now), which wins over them. Both
// times are zero when none is given; giving only one of start and end is
// an error.
func parseSearchTimes(q url.Values, now time.Time) (start, end time.Time, err error) {
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return start, end, fmt.Errorf("invalid since %q: must be a positive duration such as 30m or 2h", s)
		}
		return now.Add(-d), now, nil
	}
	if start, err = parseTimeParam(q, "start"); err != nil {
		return start, end, err
	}
	if end, err = parseTimeParam(q, "end"); err != nil {
		return start, end, err
	}
	if start.IsZero() != end.IsZero() {
		return start, end, fmt.Errorf("invalid time range: only one of start and end provided")
	}
	if !start.IsZero() && end.Before(start) {
		return start, end, fmt.Errorf("invalid time range: end (%s) is before start (%s)", q.Get("end"), q.Get("start"))
	}
	return start, end, nil
}

// parseTimeParam reads one time parameter; zero when absent.
func parseTimeParam(q url.Values, name string) (time.Time, error) {
	s := q.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	bad := fmt.Errorf("invalid %s %q: must be unix seconds, unix nanoseconds, fractional seconds or an RFC 3339 time", name, s)
	if strings.ContainsAny(s, "T:") {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, bad
		}
		return t, nil
	}
	if strings.Contains(s, ".") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) || f > math.MaxInt64/1e9 {
			return time.Time{}, bad
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)), nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return time.Time{}, bad
	}
	if len(s) > 10 {
		return time.Unix(0, v), nil
	}
	return time.Unix(v, 0), nil
}
