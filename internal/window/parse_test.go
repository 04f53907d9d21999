package window

import (
	"strings"
	"testing"
	"time"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

func TestParseErrors(t *testing.T) {
	valid := allow("0 8 * * *", time.Hour, "")
	tests := []struct {
		name    string
		windows []stagesetv1.UpdateWindow
		want    string
	}{
		{"minute out of range", []stagesetv1.UpdateWindow{valid, allow("61 * * * *", time.Hour, "")},
			`updateWindows[1]: invalid schedule "61 * * * *": end of range (61) above maximum (59)`},
		{"six fields (seconds)", []stagesetv1.UpdateWindow{allow("0 0 8 * * *", time.Hour, "")},
			`updateWindows[0]: invalid schedule "0 0 8 * * *": expected exactly 5 fields, found 6`},
		{"four fields", []stagesetv1.UpdateWindow{allow("0 8 * *", time.Hour, "")},
			`updateWindows[0]: invalid schedule "0 8 * *": expected exactly 5 fields, found 4`},
		{"empty schedule", []stagesetv1.UpdateWindow{allow("", time.Hour, "")},
			`updateWindows[0]: invalid schedule "": empty spec string`},
		{"not a cron expression", []stagesetv1.UpdateWindow{deny("every monday", time.Hour, "")},
			`updateWindows[0]: invalid schedule "every monday"`},
		{"@every", []stagesetv1.UpdateWindow{allow("@every 1h", time.Hour, "")},
			`updateWindows[0]: invalid schedule "@every 1h": @every is not supported`},
		{"unknown descriptor", []stagesetv1.UpdateWindow{allow("@fortnightly", time.Hour, "")},
			`updateWindows[0]: invalid schedule "@fortnightly": unrecognized descriptor`},
		{"time zone prefix", []stagesetv1.UpdateWindow{allow("CRON_TZ=Europe/Berlin 0 8 * * *", time.Hour, "")},
			`updateWindows[0]: invalid schedule "CRON_TZ=Europe/Berlin 0 8 * * *": a time zone prefix is not supported`},
		// robfig/cron v3.0.1 panics on a TZ= prefix without a space.
		{"time zone prefix alone", []stagesetv1.UpdateWindow{allow("TZ=UTC", time.Hour, "")},
			`updateWindows[0]: invalid schedule "TZ=UTC": a time zone prefix is not supported`},
		{"zero duration", []stagesetv1.UpdateWindow{valid, valid, deny("0 8 * * *", 0, "")},
			`updateWindows[2]: invalid duration "0s": must be greater than zero`},
		{"negative duration", []stagesetv1.UpdateWindow{deny("0 8 * * *", -time.Minute, "")},
			`updateWindows[0]: invalid duration "-1m0s": must be greater than zero`},
		{"unknown time zone", []stagesetv1.UpdateWindow{allow("0 8 * * *", time.Hour, "Mars/Base")},
			`updateWindows[0]: unknown time zone "Mars/Base"`},
		{"Local is not an IANA zone", []stagesetv1.UpdateWindow{allow("0 8 * * *", time.Hour, "Local")},
			`updateWindows[0]: unknown time zone "Local": name an IANA zone such as Europe/Berlin`},
		{"allow on a date that does not exist", []stagesetv1.UpdateWindow{allow("0 0 30 2 *", time.Hour, "")},
			`updateWindows[0]: invalid schedule "0 0 30 2 *": it never starts a window (no such date)`},
		{"deny on a date that does not exist", []stagesetv1.UpdateWindow{valid, deny("0 0 31 4,6,9,11 *", time.Hour, "Europe/Berlin")},
			`updateWindows[1]: invalid schedule "0 0 31 4,6,9,11 *": it never starts a window`},
		{"invalid type", []stagesetv1.UpdateWindow{uw("Maybe", "0 8 * * *", time.Hour, "")},
			`updateWindows[0]: invalid type "Maybe": must be Allow or Deny`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.windows)
			if err == nil {
				t.Fatalf("Parse succeeded, want an error starting %q", tt.want)
			}
			if s != nil {
				t.Errorf("Parse returned a Schedule with an error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to start with %q", err, tt.want)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	for _, w := range []stagesetv1.UpdateWindow{
		allow("0 9 * * MON-FRI", time.Hour, "Europe/Berlin"),
		allow("0 0 * JAN,JUL ?", time.Hour, "America/New_York"),
		allow("*/15 8-17 1-7 * 1", 15*time.Minute, "UTC"),
		deny("@daily", time.Hour, ""),
		deny("@midnight", time.Hour, ""),
		deny("@hourly", time.Minute, ""),
		deny("@weekly", time.Hour, ""),
		deny("@monthly", time.Hour, ""),
		deny("@yearly", time.Hour, ""),
		deny("@annually", time.Hour, ""),
		deny("  0 8 * * *  ", time.Hour, ""),
		// Rare dates exist: every four years, in the last minute of a
		// year, the 31st of the long months, and a day that is either.
		allow("0 0 29 2 *", time.Hour, "Europe/Berlin"),
		allow("59 23 31 12 *", time.Minute, "Pacific/Kiritimati"),
		allow("0 0 31 * *", time.Hour, ""),
		allow("0 0 30 2 MON", time.Hour, ""),
	} {
		if _, err := Parse([]stagesetv1.UpdateWindow{w}); err != nil {
			t.Errorf("Parse(%q): %v", w.Schedule, err)
		}
	}
}

// TestEmptyTimeZoneIsUTC checks that "" reads the schedule in UTC whatever
// the machine's local zone.
func TestEmptyTimeZoneIsUTC(t *testing.T) {
	s := mustParse(t, allow("0 8 * * *", time.Hour, ""))
	if !s.Open(utc("2026-05-04T08:30:00Z")) || s.Open(utc("2026-05-04T09:00:00Z")) {
		t.Error("a window without timeZone is not read in UTC")
	}
}

func TestParseNoWindowsIsAlwaysOpen(t *testing.T) {
	for _, windows := range [][]stagesetv1.UpdateWindow{nil, {}} {
		s, err := Parse(windows)
		if err != nil {
			t.Fatal(err)
		}
		now := utc("2026-05-04T08:30:00Z")
		if next, ok := s.NextOpening(now); !s.Open(now) || !ok || !next.Equal(now) {
			t.Errorf("Parse(%v) is not always open", windows)
		}
	}
}

// FuzzParse checks that no schedule, however odd, panics: it is user input
// read by a long-running controller.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{"TZ=UTC", "CRON_TZ=", "@every", "* * * * *", "-", "*/0 * * * *", "1-2-3 * * * *", "@", "? ? ? ? ?", "5/ * * * *"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, schedule string) {
		s, err := Parse([]stagesetv1.UpdateWindow{allow(schedule, time.Hour, "")})
		if err == nil {
			s.Open(utc("2026-05-04T08:30:00Z"))
		}
	})
}
