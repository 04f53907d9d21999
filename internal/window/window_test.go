package window

import (
	"testing"
	"time"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// at is one instant of a scenario: whether updates are allowed then, and when
// NextOpening says they will be ("" for none within Horizon).
type at struct {
	t    string
	open bool
	next string
}

func checkInstants(t *testing.T, s *Schedule, instants []at) {
	t.Helper()
	for _, a := range instants {
		when := utc(a.t)
		if got := s.Open(when); got != a.open {
			t.Errorf("Open(%s) = %v, want %v", a.t, got, a.open)
		}
		next, ok := s.NextOpening(when)
		switch {
		case a.next == "" && ok:
			t.Errorf("NextOpening(%s) = %s, want none", a.t, next.Format(time.RFC3339Nano))
		case a.next != "" && (!ok || !next.Equal(utc(a.next))):
			t.Errorf("NextOpening(%s) = %s, %v; want %s", a.t, next.Format(time.RFC3339Nano), ok, a.next)
		}
	}
}

func TestOpenAndNextOpening(t *testing.T) {
	tests := []struct {
		name     string
		windows  []stagesetv1.UpdateWindow
		instants []at
	}{{
		name: "no windows: always open",
		instants: []at{
			{"2026-03-29T01:30:00Z", true, "2026-03-29T01:30:00Z"},
			{"2026-07-01T12:00:00.5Z", true, "2026-07-01T12:00:00.5Z"},
		},
	}, {
		name:    "allow only: open from the start, closed at start+duration",
		windows: []stagesetv1.UpdateWindow{allow("0 8 * * *", 2*time.Hour, "")},
		instants: []at{
			{"2026-05-04T07:59:59.999Z", false, "2026-05-04T08:00:00Z"},
			{"2026-05-04T08:00:00Z", true, "2026-05-04T08:00:00Z"},
			{"2026-05-04T09:59:59Z", true, "2026-05-04T09:59:59Z"},
			{"2026-05-04T10:00:00Z", false, "2026-05-05T08:00:00Z"},
		},
	}, {
		name:    "deny only: closed inside, reopens exactly at the end",
		windows: []stagesetv1.UpdateWindow{deny("0 12 * * *", 90*time.Minute+30*time.Second, "")},
		instants: []at{
			{"2026-05-04T11:59:59Z", true, "2026-05-04T11:59:59Z"},
			{"2026-05-04T12:00:00Z", false, "2026-05-04T13:30:30Z"},
			{"2026-05-04T13:30:29.999Z", false, "2026-05-04T13:30:30Z"},
			{"2026-05-04T13:30:30Z", true, "2026-05-04T13:30:30Z"},
		},
	}, {
		name: "deny beats allow",
		windows: []stagesetv1.UpdateWindow{
			allow("0 8 * * *", 10*time.Hour, ""),
			deny("0 12 * * *", time.Hour, ""),
		},
		instants: []at{
			{"2026-05-04T11:59:00Z", true, "2026-05-04T11:59:00Z"},
			{"2026-05-04T12:30:00Z", false, "2026-05-04T13:00:00Z"},
			{"2026-05-04T13:00:00Z", true, "2026-05-04T13:00:00Z"},
		},
	}, {
		name: "deny ending after the allow: wait for the next allow",
		windows: []stagesetv1.UpdateWindow{
			allow("0 8 * * *", 2*time.Hour, ""),
			deny("30 9 * * *", time.Hour, ""),
		},
		instants: []at{
			{"2026-05-04T09:45:00Z", false, "2026-05-05T08:00:00Z"},
		},
	}, {
		name: "same-day allow and deny starts: the deny wins at its start",
		windows: []stagesetv1.UpdateWindow{
			allow("0 8 * * *", time.Hour, ""),
			deny("0 8 * * *", 30*time.Minute, ""),
		},
		instants: []at{
			{"2026-05-04T07:00:00Z", false, "2026-05-04T08:30:00Z"},
			{"2026-05-04T08:00:00Z", false, "2026-05-04T08:30:00Z"},
		},
	}, {
		name: "overlapping allows chain into one stretch",
		windows: []stagesetv1.UpdateWindow{
			allow("0 8 * * *", 2*time.Hour, ""),
			allow("0 10 * * *", 2*time.Hour, ""),
			allow("0 9 * * *", 30*time.Minute, ""),
		},
		instants: []at{
			{"2026-05-04T09:59:59Z", true, "2026-05-04T09:59:59Z"},
			{"2026-05-04T10:00:00Z", true, "2026-05-04T10:00:00Z"},
			{"2026-05-04T11:59:59Z", true, "2026-05-04T11:59:59Z"},
			{"2026-05-04T12:00:00Z", false, "2026-05-05T08:00:00Z"},
		},
	}, {
		name: "chained denies are jumped over as one",
		windows: []stagesetv1.UpdateWindow{
			deny("0 8 * * *", 2*time.Hour, ""),
			deny("30 9 * * *", time.Hour, ""),
			deny("15 10 * * *", 45*time.Minute+1*time.Second, ""),
		},
		instants: []at{
			{"2026-05-04T08:15:00Z", false, "2026-05-04T11:00:01Z"},
		},
	}, {
		name: "a window that started before t is still open (26h, starts Sunday)",
		windows: []stagesetv1.UpdateWindow{
			allow("0 22 * * SUN", 26*time.Hour, ""),
		},
		instants: []at{
			{"2026-05-04T23:59:59Z", true, "2026-05-04T23:59:59Z"}, // Monday
			{"2026-05-05T00:00:00Z", false, "2026-05-10T22:00:00Z"},
		},
	}, {
		name: "every-minute deny with a long duration: one jump per occurrence",
		windows: []stagesetv1.UpdateWindow{
			allow("0 0 * * *", 24*time.Hour, ""),
			deny("* 1-3 * * *", 12*time.Hour, ""),
		},
		instants: []at{
			{"2026-05-04T02:00:00Z", false, "2026-05-04T15:59:00Z"},
		},
	}, {
		name:    "deny covering everything",
		windows: []stagesetv1.UpdateWindow{deny("0 * * * *", time.Hour, "Europe/Berlin")},
		instants: []at{
			{"2026-03-29T00:30:00Z", false, ""},
		},
	}, {
		name:    "allow beyond the horizon (29 February), then within it",
		windows: []stagesetv1.UpdateWindow{allow("0 0 29 2 *", time.Hour, "")},
		instants: []at{
			{"2026-03-01T00:00:00Z", false, ""},
			{"2027-06-01T00:00:00Z", false, "2028-02-29T00:00:00Z"},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkInstants(t, mustParse(t, tt.windows...), tt.instants)
		})
	}
}

func TestNilScheduleIsAlwaysOpen(t *testing.T) {
	var s *Schedule
	now := utc("2026-05-04T12:00:00Z")
	if !s.Open(now) {
		t.Error("nil Schedule is closed")
	}
	if next, ok := s.NextOpening(now); !ok || !next.Equal(now) {
		t.Errorf("NextOpening = %s, %v; want %s", next, ok, now)
	}
}

func TestNextOpeningKeepsTheCallersLocation(t *testing.T) {
	s := mustParse(t, allow("0 8 * * *", time.Hour, "America/New_York"))
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	next, ok := s.NextOpening(time.Date(2026, 5, 4, 0, 0, 0, 0, berlin))
	if !ok || next.Location() != berlin || !next.Equal(utc("2026-05-04T12:00:00Z")) {
		t.Errorf("NextOpening = %s, %v; want 2026-05-04 14:00 in Europe/Berlin", next, ok)
	}
}
