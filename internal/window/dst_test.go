package window

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// In 2026 Europe/Berlin springs forward on 29 March at 01:00Z (02:00 CET
// becomes 03:00 CEST) and falls back on 25 October at 01:00Z (03:00 CEST
// becomes 02:00 CET); America/New_York springs forward on 8 March at 07:00Z
// (02:00 EST becomes 03:00 EDT) and falls back on 1 November at 06:00Z
// (02:00 EDT becomes 01:00 EST). Durations are elapsed time, not wall time.
func TestDaylightSavingTransitions(t *testing.T) {
	tests := []struct {
		name     string
		window   stagesetv1.UpdateWindow
		instants []at
	}{{
		name:   "Berlin 02:30 does not exist on spring-forward day: no window",
		window: allow("30 2 * * *", 30*time.Minute, "Europe/Berlin"),
		instants: []at{
			{"2026-03-28T01:45:00Z", true, "2026-03-28T01:45:00Z"}, // 02:45 CET the day before
			{"2026-03-28T02:00:00Z", false, "2026-03-30T00:30:00Z"},
			{"2026-03-29T00:30:00Z", false, "2026-03-30T00:30:00Z"},
			{"2026-03-29T01:30:00Z", false, "2026-03-30T00:30:00Z"},
		},
	}, {
		name:   "Berlin 02:30 happens twice on fall-back day: two windows",
		window: allow("30 2 * * *", 30*time.Minute, "Europe/Berlin"),
		instants: []at{
			{"2026-10-25T00:00:00Z", false, "2026-10-25T00:30:00Z"}, // 02:30 CEST
			{"2026-10-25T00:45:00Z", true, "2026-10-25T00:45:00Z"},
			{"2026-10-25T01:00:00Z", false, "2026-10-25T01:30:00Z"}, // 02:30 CET
			{"2026-10-25T01:45:00Z", true, "2026-10-25T01:45:00Z"},
			{"2026-10-25T02:00:00Z", false, "2026-10-26T01:30:00Z"},
		},
	}, {
		name:   "New York 02:30 does not exist on spring-forward day",
		window: allow("30 2 * * *", time.Hour, "America/New_York"),
		instants: []at{
			{"2026-03-07T08:00:00Z", true, "2026-03-07T08:00:00Z"}, // 03:00 EST the day before
			{"2026-03-07T09:00:00Z", false, "2026-03-09T06:30:00Z"},
		},
	}, {
		name:   "New York 02:30 happens once on fall-back day",
		window: allow("30 2 * * *", time.Hour, "America/New_York"),
		instants: []at{
			{"2026-11-01T00:00:00Z", false, "2026-11-01T07:30:00Z"},
			{"2026-11-01T08:30:00Z", false, "2026-11-02T07:30:00Z"},
		},
	}, {
		name:   "New York 01:00 for 3h across fall-back: 01:00 EDT and 01:00 EST both start",
		window: allow("0 1 * * *", 3*time.Hour, "America/New_York"),
		instants: []at{
			{"2026-11-01T04:59:59Z", false, "2026-11-01T05:00:00Z"},
			{"2026-11-01T08:59:59Z", true, "2026-11-01T08:59:59Z"}, // held open by the 01:00 EST start
			{"2026-11-01T09:00:00Z", false, "2026-11-02T06:00:00Z"},
		},
	}, {
		name:   "Berlin 01:00 for 3h across fall-back: three elapsed hours end at 03:00 CET",
		window: allow("0 1 * * *", 3*time.Hour, "Europe/Berlin"),
		instants: []at{
			{"2026-10-24T22:59:59Z", false, "2026-10-24T23:00:00Z"}, // 01:00 CEST
			{"2026-10-25T01:59:59Z", true, "2026-10-25T01:59:59Z"},
			{"2026-10-25T02:00:00Z", false, "2026-10-26T00:00:00Z"}, // 01:00 CET next day
		},
	}, {
		name:   "Berlin 01:00 for 3h across spring-forward: ends at 05:00 CEST",
		window: allow("0 1 * * *", 3*time.Hour, "Europe/Berlin"),
		instants: []at{
			{"2026-03-29T00:00:00Z", true, "2026-03-29T00:00:00Z"},
			{"2026-03-29T02:59:59Z", true, "2026-03-29T02:59:59Z"},
			{"2026-03-29T03:00:00Z", false, "2026-03-29T23:00:00Z"},
		},
	}, {
		name:   "Berlin deny 02:30 on spring-forward day does not block",
		window: deny("30 2 * * *", time.Hour, "Europe/Berlin"),
		instants: []at{
			{"2026-03-29T00:45:00Z", true, "2026-03-29T00:45:00Z"},
			{"2026-03-29T01:45:00Z", true, "2026-03-29T01:45:00Z"},
			{"2026-03-30T00:45:00Z", false, "2026-03-30T01:30:00Z"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkInstants(t, mustParse(t, tt.window), tt.instants)
		})
	}
}

// TestStartsMatchRobfig shows that the starts used here are exactly those of
// robfig/cron's own SpecSchedule.Next in Europe/Berlin and America/New_York
// for all of 2026, DST days included.
func TestStartsMatchRobfig(t *testing.T) {
	for _, zone := range []string{"Europe/Berlin", "America/New_York"} {
		loc, err := time.LoadLocation(zone)
		if err != nil {
			t.Fatal(err)
		}
		for _, expr := range []string{"30 2 * * *", "0 1 * * *", "*/15 0-4 * * *", "0 2 * * SUN", "0 0 1,15 * MON", "@daily"} {
			parsed, err := cron.ParseStandard(expr)
			if err != nil {
				t.Fatal(err)
			}
			theirs := parsed.(*cron.SpecSchedule)
			theirs.Location = loc
			ours, err := parseCron(expr, loc)
			if err != nil {
				t.Fatal(err)
			}
			from, end := utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z")
			for n := 0; ; n++ {
				want := theirs.Next(from)
				got, ok := ours.firstStart(from.Add(time.Nanosecond), end)
				if !want.Before(end) {
					if ok {
						t.Errorf("%s %q: extra start %s", zone, expr, got)
					}
					break
				}
				if !ok || !got.Equal(want) {
					t.Fatalf("%s %q: start %d after %s is %s, robfig says %s", zone, expr, n, from, got, want)
				}
				from = want
			}
		}
	}
}

// TestHalfHourDaylightSaving covers Australia/Lord_Howe, whose clocks move
// by 30 minutes: robfig/cron's Next skips days there, the starts used here
// follow the wall clock like everywhere else.
func TestHalfHourDaylightSaving(t *testing.T) {
	windows := []stagesetv1.UpdateWindow{allow("0 0 * * *", 10*time.Minute, "Australia/Lord_Howe")}
	from, to := utc("2026-03-25T00:00:00Z"), utc("2026-04-15T00:00:00Z") // transition on 5 April
	ref := newReference(t, windows, from, to)
	s := mustParse(t, windows...)
	for at := from.Add(24 * time.Hour); at.Before(to.Add(-48 * time.Hour)); at = at.Add(10 * time.Minute) {
		next, ok := s.NextOpening(at)
		want, _, _ := ref.nextOpening(at)
		if !ok || !next.Equal(want) {
			t.Fatalf("NextOpening(%s) = %s, %v; want %s", at, next, ok, want)
		}
	}
}
