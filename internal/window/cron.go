package window

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// starBit is the bit robfig/cron sets in a field written as "*" or "?". It
// changes how day-of-month and day-of-week combine (see dayMatches).
const starBit = 1 << 63

// cronSpec is a five-field cron expression evaluated on the wall clock of loc.
//
// robfig/cron parses the expression, but its SpecSchedule.Next is not used:
// Next walks wall-clock fields with time.Date and AddDate in the zone, which
// is right in Europe/Berlin and America/New_York but skips whole days in
// zones with half-hour DST shifts (Australia/Lord_Howe: "0 0 * * *" loses
// days after the April transition). Instead, starts are searched one
// constant-offset zone period at a time (time.Time.ZoneBounds): inside a
// period the wall clock is UTC plus a fixed offset, so plain calendar
// arithmetic in UTC is exact. The resulting rule is the wall-clock one, and it
// matches what robfig/cron does in Berlin and New York:
//   - a start is every instant whose local wall-clock minute matches;
//   - a time skipped by spring-forward does not start a window that day
//     ("30 2 * * *" in Europe/Berlin has no window on the last Sunday of March);
//   - a time repeated by fall-back starts a window twice, one hour apart
//     ("30 2 * * *" in Europe/Berlin on the last Sunday of October).
type cronSpec struct {
	minute, hour, dom, month, dow uint64
	loc                           *time.Location
}

// parseCron parses expr with the robfig/cron standard parser: five fields
// (minute, hour, day of month, month, day of week; names like JAN and MON,
// ranges, lists, steps, "?" as "*") and the fixed descriptors @yearly,
// @annually, @monthly, @weekly, @daily, @midnight and @hourly.
//
// Rejected: a seconds field (six fields), @every (a delay from whenever the
// process started, not a calendar time) and TZ=/CRON_TZ= prefixes (the zone
// comes from the window's timeZone, so there is one place to read it; and
// robfig/cron v3.0.1 panics on "TZ=UTC" with no space after it).
func parseCron(expr string, loc *time.Location) (cronSpec, error) {
	trimmed := strings.TrimSpace(expr)
	switch {
	case strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ="):
		return cronSpec{}, errors.New("a time zone prefix is not supported, set timeZone instead")
	case strings.HasPrefix(trimmed, "@every"):
		return cronSpec{}, errors.New("@every is not supported, a window needs calendar start times")
	}

	parsed, err := cron.ParseStandard(trimmed)
	if err != nil {
		return cronSpec{}, err
	}
	s, ok := parsed.(*cron.SpecSchedule)
	if !ok {
		return cronSpec{}, fmt.Errorf("unsupported schedule type %T", parsed)
	}
	return cronSpec{minute: s.Minute, hour: s.Hour, dom: s.Dom, month: s.Month, dow: s.Dow, loc: loc}, nil
}

// firstStart returns the earliest start s with from <= s < until.
func (c cronSpec) firstStart(from, until time.Time) (time.Time, bool) {
	for from.Before(until) {
		local := from.In(c.loc)
		_, offset := local.Zone()
		_, periodEnd := local.ZoneBounds()
		end := until
		if !periodEnd.IsZero() && periodEnd.Before(until) {
			end = periodEnd
		}
		off := time.Duration(offset) * time.Second
		if r, ok := c.nextWall(ceilMinute(from.UTC().Add(off)), end.UTC().Add(off)); ok {
			return r.Add(-off), true
		}
		from = end
	}
	return time.Time{}, false
}

// lastStart returns the latest start s with from <= s < until.
func (c cronSpec) lastStart(from, until time.Time) (time.Time, bool) {
	last := until.Add(-time.Nanosecond)
	for !last.Before(from) {
		local := last.In(c.loc)
		_, offset := local.Zone()
		periodStart, _ := local.ZoneBounds()
		start := from
		if !periodStart.IsZero() && periodStart.After(from) {
			start = periodStart
		}
		off := time.Duration(offset) * time.Second
		if r, ok := c.prevWall(last.UTC().Add(off).Truncate(time.Minute), start.UTC().Add(off)); ok {
			return r.Add(-off), true
		}
		last = start.Add(-time.Nanosecond)
	}
	return time.Time{}, false
}

// nextWall returns the earliest matching wall-clock minute m with
// from <= m < limit. Wall-clock times are carried as UTC times; from is a
// whole minute.
func (c cronSpec) nextWall(from, limit time.Time) (time.Time, bool) {
	for t := from; t.Before(limit); {
		y, mo, d := t.Date()
		if !c.dayMatches(t) {
			if c.month&(1<<uint(mo)) == 0 {
				t = time.Date(y, mo+1, 1, 0, 0, 0, 0, time.UTC)
			} else {
				t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
			}
			continue
		}
		h, ok := nextBit(c.hour, t.Hour())
		if !ok {
			t = time.Date(y, mo, d+1, 0, 0, 0, 0, time.UTC)
			continue
		}
		firstMinute := t.Minute()
		if h != t.Hour() {
			firstMinute = 0
		}
		m, ok := nextBit(c.minute, firstMinute)
		if !ok {
			t = time.Date(y, mo, d, h+1, 0, 0, 0, time.UTC)
			continue
		}
		if r := time.Date(y, mo, d, h, m, 0, 0, time.UTC); r.Before(limit) {
			return r, true
		}
		break
	}
	return time.Time{}, false
}

// prevWall returns the latest matching wall-clock minute m with
// lower <= m <= from. Wall-clock times are carried as UTC times; from is a
// whole minute.
func (c cronSpec) prevWall(from, lower time.Time) (time.Time, bool) {
	for t := from; !t.Before(lower); {
		y, mo, d := t.Date()
		if !c.dayMatches(t) {
			if c.month&(1<<uint(mo)) == 0 {
				t = time.Date(y, mo, 1, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			} else {
				t = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			}
			continue
		}
		h, ok := prevBit(c.hour, t.Hour())
		if !ok {
			t = time.Date(y, mo, d, 0, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		lastMinute := t.Minute()
		if h != t.Hour() {
			lastMinute = 59
		}
		m, ok := prevBit(c.minute, lastMinute)
		if !ok {
			t = time.Date(y, mo, d, h, 0, 0, 0, time.UTC).Add(-time.Minute)
			continue
		}
		if r := time.Date(y, mo, d, h, m, 0, 0, time.UTC); !r.Before(lower) {
			return r, true
		}
		break
	}
	return time.Time{}, false
}

// dayMatches reports whether the date of wall-clock time t matches the month,
// day-of-month and day-of-week fields. As in cron (and robfig/cron), when
// both day fields are restricted a day matching either one is enough; when
// one is "*" both must match.
func (c cronSpec) dayMatches(t time.Time) bool {
	if c.month&(1<<uint(t.Month())) == 0 {
		return false
	}
	domMatch := c.dom&(1<<uint(t.Day())) != 0
	dowMatch := c.dow&(1<<uint(t.Weekday())) != 0
	if c.dom&starBit != 0 || c.dow&starBit != 0 {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}

// nextBit returns the lowest set bit of field at or above from.
func nextBit(field uint64, from int) (int, bool) {
	rest := (field &^ starBit) >> uint(from)
	if rest == 0 {
		return 0, false
	}
	return from + bits.TrailingZeros64(rest), true
}

// prevBit returns the highest set bit of field at or below from.
func prevBit(field uint64, from int) (int, bool) {
	rest := field &^ starBit & (1<<uint(from+1) - 1)
	if rest == 0 {
		return 0, false
	}
	return 63 - bits.LeadingZeros64(rest), true
}

// ceilMinute rounds t up to a whole minute.
func ceilMinute(t time.Time) time.Time {
	f := t.Truncate(time.Minute)
	if f.Before(t) {
		f = f.Add(time.Minute)
	}
	return f
}
