package window

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// Horizon is how far ahead NextOpening looks for an opening: 366 days reach
// the next start of any schedule that fires at least once a year. A window
// on 29 February only may be further away; NextOpening then reports none.
const Horizon = 366 * 24 * time.Hour

// Schedule is a parsed set of update windows (SPEC §5). The zero value and a
// nil *Schedule are always open.
type Schedule struct {
	allow []window
	deny  []window
}

// window is one compiled update window: it is open during
// [start, start+duration) for every start of its cron expression.
type window struct {
	starts   cronSpec
	duration time.Duration
}

// Parse validates and compiles update windows. Each window needs a type of
// Allow or Deny, a duration greater than zero, a loadable IANA time zone
// ("" means UTC, "Local" is refused) and a schedule the robfig/cron standard
// parser accepts: five fields (minute hour day-of-month month day-of-week,
// with names, ranges, lists, steps and "?"), or @yearly, @annually,
// @monthly, @weekly, @daily, @midnight or @hourly. Six fields (seconds),
// @every and TZ=/CRON_TZ= prefixes are refused. Errors name the window, as
// in `updateWindows[1]: invalid schedule "61 * * * *": ...` or
// `updateWindows[0]: unknown time zone "Mars/Base"`. No windows give a
// Schedule that is always open.
//
// Starts follow the wall clock of the zone: a start time skipped by a
// spring-forward change does not start a window that day, one repeated by a
// fall-back change starts two. Durations are elapsed time.
func Parse(windows []stagesetv1.UpdateWindow) (*Schedule, error) {
	s := &Schedule{}
	for i, uw := range windows {
		w, err := compile(uw)
		if err != nil {
			return nil, fmt.Errorf("updateWindows[%d]: %w", i, err)
		}
		if uw.Type == stagesetv1.UpdateWindowDeny {
			s.deny = append(s.deny, w)
		} else {
			s.allow = append(s.allow, w)
		}
	}
	return s, nil
}

func compile(uw stagesetv1.UpdateWindow) (window, error) {
	if uw.Type != stagesetv1.UpdateWindowAllow && uw.Type != stagesetv1.UpdateWindowDeny {
		return window{}, fmt.Errorf("invalid type %q: must be %s or %s",
			uw.Type, stagesetv1.UpdateWindowAllow, stagesetv1.UpdateWindowDeny)
	}
	if uw.Duration.Duration <= 0 {
		return window{}, fmt.Errorf("invalid duration %q: must be greater than zero", uw.Duration.Duration)
	}
	loc, err := loadZone(uw.TimeZone)
	if err != nil {
		return window{}, err
	}
	spec, err := compileSchedule(uw.Schedule, loc)
	if err != nil {
		return window{}, fmt.Errorf("invalid schedule %q: %w", uw.Schedule, err)
	}
	return window{starts: spec, duration: uw.Duration.Duration}, nil
}

// compileSchedule parses a window's schedule in loc and refuses one that
// never starts a window.
func compileSchedule(expr string, loc *time.Location) (cronSpec, error) {
	spec, err := parseCron(expr, loc)
	if err != nil {
		return cronSpec{}, err
	}
	// A schedule of dates that do not exist (30 February) parses but never
	// starts a window: an Allow window that would hold updates forever, or
	// a Deny window that does nothing. Eight years cover every date there
	// is, 29 February included.
	if _, ok := spec.firstStart(neverReference, neverReference.AddDate(8, 0, 0)); !ok {
		return cronSpec{}, errors.New("it never starts a window (no such date)")
	}
	return spec, nil
}

// Validate checks one update window by the rules of Parse, but reports every
// problem at once, each at its own field under path, so that the admission
// webhook and the reconciler can point at the bad field: a bad time zone and
// a bad schedule in one window are two errors. A schedule is checked in UTC
// when the zone does not load: whether it parses does not depend on the zone.
func Validate(uw stagesetv1.UpdateWindow, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if uw.Type != stagesetv1.UpdateWindowAllow && uw.Type != stagesetv1.UpdateWindowDeny {
		errs = append(errs, field.NotSupported(path.Child("type"), uw.Type,
			[]string{stagesetv1.UpdateWindowAllow, stagesetv1.UpdateWindowDeny}))
	}
	if uw.Duration.Duration <= 0 {
		errs = append(errs, field.Invalid(path.Child("duration"), uw.Duration.String(), "must be greater than zero"))
	}
	loc, err := loadZone(uw.TimeZone)
	if err != nil {
		errs = append(errs, field.Invalid(path.Child("timeZone"), uw.TimeZone, err.Error()))
		loc = time.UTC
	}
	if _, err := compileSchedule(uw.Schedule, loc); err != nil {
		errs = append(errs, field.Invalid(path.Child("schedule"), uw.Schedule, err.Error()))
	}
	return errs
}

// neverReference is where the check for schedules that never fire starts.
var neverReference = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// loadZone loads an IANA zone; "" is UTC. "Local" is refused: it would make
// the windows depend on the machine the controller runs on.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if name == "Local" {
		return nil, fmt.Errorf("unknown time zone %q: name an IANA zone such as Europe/Berlin", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		// The time package says "unknown time zone X" for a missing zone:
		// repeating it after our own words would read twice.
		if strings.HasPrefix(err.Error(), "unknown time zone") {
			return nil, fmt.Errorf("unknown time zone %q", name)
		}
		return nil, fmt.Errorf("unknown time zone %q: %w", name, err)
	}
	return loc, nil
}

// coveringStart returns the latest start of w whose occurrence is open at t,
// that is the latest start s with s <= t < s+duration. Taking the latest one
// gives the occurrence that stays open longest.
func (w window) coveringStart(t time.Time) (time.Time, bool) {
	return w.starts.lastStart(t.Add(-w.duration).Add(time.Nanosecond), t.Add(time.Nanosecond))
}

func (w window) openAt(t time.Time) bool {
	_, open := w.coveringStart(t)
	return open
}

// Open tells whether updates are allowed at t: no Deny window is open and
// either no Allow window is declared or one of them is open.
func (s *Schedule) Open(t time.Time) bool {
	if s == nil {
		return true
	}
	for _, w := range s.deny {
		if w.openAt(t) {
			return false
		}
	}
	return len(s.allow) == 0 || s.allowOpen(t)
}

func (s *Schedule) allowOpen(t time.Time) bool {
	for _, w := range s.allow {
		if w.openAt(t) {
			return true
		}
	}
	return false
}

// NextOpening returns the earliest time >= t at which Open is true: t itself
// when open now, otherwise the exact instant a Deny window ends or an Allow
// window starts. ok is false when there is no opening within Horizon of t
// (Allow windows that never fire, Deny windows that cover everything).
func (s *Schedule) NextOpening(t time.Time) (next time.Time, ok bool) {
	if s == nil {
		return t, true
	}
	// Open can only become true where a Deny occurrence ends or an Allow
	// occurrence starts. Rather than test every such instant in turn, each
	// step jumps over a stretch known to be closed: the rest of every open
	// Deny occurrence (taking the latest covering start, the one ending
	// last) and, when no Allow window is open, everything before the next
	// Allow start. Each jump lands on a Deny end or an Allow start, so the
	// first instant that passes both tests is exact.
	limit := t.Add(Horizon)
	for c := t; !c.After(limit); {
		closedUntil := c
		for _, w := range s.deny {
			if start, open := w.coveringStart(c); open {
				if end := start.Add(w.duration); end.After(closedUntil) {
					closedUntil = end
				}
			}
		}
		if len(s.allow) > 0 && !s.allowOpen(c) {
			start, found := s.firstAllowStart(c, limit)
			if !found {
				return time.Time{}, false
			}
			if start.After(closedUntil) {
				closedUntil = start
			}
		}
		if closedUntil.Equal(c) {
			return c.In(t.Location()), true
		}
		c = closedUntil
	}
	return time.Time{}, false
}

// firstAllowStart returns the earliest Allow start in [from, limit].
func (s *Schedule) firstAllowStart(from, limit time.Time) (time.Time, bool) {
	var first time.Time
	found := false
	for _, w := range s.allow {
		if start, ok := w.starts.firstStart(from, limit.Add(time.Nanosecond)); ok && (!found || start.Before(first)) {
			first, found = start, true
		}
	}
	return first, found
}
