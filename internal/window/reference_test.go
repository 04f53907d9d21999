package window

import (
	"sort"
	"testing"
	"time"
	// The controller binary embeds tzdata too; tests must not depend on the
	// zoneinfo of the machine they run on.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// reference is a brute-force model of a Schedule: it finds the starts of
// every window by testing every minute of a span against the cron fields on
// the wall clock of the window's zone, with none of the period walking or
// jumping of the real implementation.
type reference struct {
	windows []refWindow
	// events are all Allow starts and Deny ends, sorted: the only instants
	// at which Open can turn true.
	events   []time.Time
	from, to time.Time
}

type refWindow struct {
	deny     bool
	duration time.Duration
	starts   []time.Time
}

func newReference(t *testing.T, windows []stagesetv1.UpdateWindow, from, to time.Time) *reference {
	t.Helper()
	ref := &reference{from: from, to: to}
	for _, uw := range windows {
		parsed, err := cron.ParseStandard(uw.Schedule)
		if err != nil {
			t.Fatalf("reference cannot parse %q: %v", uw.Schedule, err)
		}
		spec := parsed.(*cron.SpecSchedule)
		loc := time.UTC
		if uw.TimeZone != "" {
			if loc, err = time.LoadLocation(uw.TimeZone); err != nil {
				t.Fatal(err)
			}
		}
		rw := refWindow{deny: uw.Type == stagesetv1.UpdateWindowDeny, duration: uw.Duration.Duration}
		for u := from.Truncate(time.Minute); u.Before(to); u = u.Add(time.Minute) {
			if wallMatches(spec, u.In(loc)) {
				rw.starts = append(rw.starts, u)
				if rw.deny {
					ref.events = append(ref.events, u.Add(rw.duration))
				} else {
					ref.events = append(ref.events, u)
				}
			}
		}
		ref.windows = append(ref.windows, rw)
	}
	sort.Slice(ref.events, func(i, j int) bool { return ref.events[i].Before(ref.events[j]) })
	return ref
}

// wallMatches tells whether local, read on its own wall clock, is a cron
// start of spec.
func wallMatches(spec *cron.SpecSchedule, local time.Time) bool {
	if local.Second() != 0 || local.Nanosecond() != 0 {
		return false
	}
	if spec.Minute&(1<<uint(local.Minute())) == 0 || spec.Hour&(1<<uint(local.Hour())) == 0 ||
		spec.Month&(1<<uint(local.Month())) == 0 {
		return false
	}
	dom := spec.Dom&(1<<uint(local.Day())) != 0
	dow := spec.Dow&(1<<uint(local.Weekday())) != 0
	if spec.Dom&starBit != 0 || spec.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// open is SPEC §5 read literally: a window is open at t when one of its
// starts s has s <= t < s+duration.
func (r *reference) open(t time.Time) bool {
	anyAllow, allowOpen := false, false
	for _, w := range r.windows {
		i := sort.Search(len(w.starts), func(i int) bool { return w.starts[i].After(t) })
		isOpen := i > 0 && t.Before(w.starts[i-1].Add(w.duration))
		// An earlier start with a longer reach is impossible (equal
		// durations), so the latest start at or before t decides.
		if w.deny && isOpen {
			return false
		}
		if !w.deny {
			anyAllow = true
			allowOpen = allowOpen || isOpen
		}
	}
	return !anyAllow || allowOpen
}

// nextOpening returns the first instant >= t that is open, testing t and then
// every Allow start and Deny end in order. known is false when the answer
// lies beyond the scanned span.
func (r *reference) nextOpening(t time.Time) (next time.Time, found, known bool) {
	if r.open(t) {
		return t, true, true
	}
	i := sort.Search(len(r.events), func(i int) bool { return !r.events[i].Before(t) })
	for ; i < len(r.events); i++ {
		if e := r.events[i]; e.Before(r.to) && r.open(e) {
			return e, !e.After(t.Add(Horizon)), true
		}
	}
	return time.Time{}, false, false
}

func uw(typ, schedule string, d time.Duration, zone string) stagesetv1.UpdateWindow {
	return stagesetv1.UpdateWindow{Type: typ, Schedule: schedule, Duration: metav1.Duration{Duration: d}, TimeZone: zone}
}

func allow(schedule string, d time.Duration, zone string) stagesetv1.UpdateWindow {
	return uw(stagesetv1.UpdateWindowAllow, schedule, d, zone)
}

func deny(schedule string, d time.Duration, zone string) stagesetv1.UpdateWindow {
	return uw(stagesetv1.UpdateWindowDeny, schedule, d, zone)
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func mustParse(t *testing.T, windows ...stagesetv1.UpdateWindow) *Schedule {
	t.Helper()
	s, err := Parse(windows)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return s
}
