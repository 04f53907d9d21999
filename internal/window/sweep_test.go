package window

import (
	"testing"
	"time"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// TestYearAgainstReference steps through all of 2026, which has DST changes
// in Europe/Berlin (29 March, 25 October) and America/New_York (8 March,
// 1 November), and compares Open and NextOpening with the brute-force
// reference at every hour and at a second, irregular grid of instants.
func TestYearAgainstReference(t *testing.T) {
	const berlin, newYork = "Europe/Berlin", "America/New_York"
	tests := []struct {
		name    string
		windows []stagesetv1.UpdateWindow
	}{
		{"daily 02:30 allow, Berlin", []stagesetv1.UpdateWindow{allow("30 2 * * *", 30*time.Minute, berlin)}},
		{"daily 02:30 allow, New York", []stagesetv1.UpdateWindow{allow("30 2 * * *", time.Hour, newYork)}},
		{"daily 01:00 3h allow, Berlin", []stagesetv1.UpdateWindow{allow("0 1 * * *", 3*time.Hour, berlin)}},
		{"daily 01:00 3h allow, New York", []stagesetv1.UpdateWindow{allow("0 1 * * *", 3*time.Hour, newYork)}},
		{"chained allows with a deny inside", []stagesetv1.UpdateWindow{
			allow("0 8 * * *", 2*time.Hour, berlin),
			allow("0 10 * * *", 2*time.Hour+30*time.Minute, berlin),
			allow("0 9 * * *", time.Hour, newYork),
			deny("45 10 * * *", 20*time.Minute+15*time.Second, berlin),
		}},
		{"mixed zones, deny beats allow", []stagesetv1.UpdateWindow{
			allow("0 9 * * 1-5", 8*time.Hour, berlin),
			allow("30 22 * * 0", 26*time.Hour, newYork),
			deny("0 12 * * *", 90*time.Minute+30*time.Second, newYork),
			deny("*/20 13 * * 1-5", 7*time.Minute, berlin),
		}},
		{"deny only: weekend and Christmas freezes", []stagesetv1.UpdateWindow{
			deny("0 18 * * 5", 62*time.Hour+45*time.Minute, newYork),
			deny("0 0 24-26 12 *", 24*time.Hour, berlin),
			deny("30 1 * * *", time.Hour, berlin),
		}},
	}
	year := utc("2026-01-01T00:00:00Z")
	end := year.AddDate(1, 0, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, tt.windows...)
			// Start scanning three days early: the longest window lasts
			// under three days, so every start that can cover a point of
			// 2026 is known. Scan well past the year for NextOpening.
			ref := newReference(t, tt.windows, year.AddDate(0, 0, -3), end.AddDate(0, 0, 20))
			check := func(at time.Time) {
				t.Helper()
				if got, want := s.Open(at), ref.open(at); got != want {
					t.Fatalf("Open(%s) = %v, want %v", at, got, want)
				}
				next, ok := s.NextOpening(at)
				wantNext, wantOK, known := ref.nextOpening(at)
				if !known {
					if ok && next.Before(ref.to) {
						t.Fatalf("NextOpening(%s) = %s, the reference has no opening before %s", at, next, ref.to)
					}
					return
				}
				if ok != wantOK || !next.Equal(wantNext) {
					t.Fatalf("NextOpening(%s) = %s, %v; want %s, %v", at, next, ok, wantNext, wantOK)
				}
				// Exact to the instant: closed just before, unless at itself.
				if next.After(at) && s.Open(next.Add(-time.Nanosecond)) {
					t.Fatalf("NextOpening(%s) = %s, but Open just before it", at, next)
				}
			}
			for at := year; at.Before(end); at = at.Add(time.Hour) {
				check(at)
			}
			// An irregular step lands inside windows, on odd seconds and
			// fractions of a second.
			for at := year.Add(250 * time.Millisecond); at.Before(end); at = at.Add(193*time.Minute + 13*time.Second + 500*time.Millisecond) {
				check(at)
			}
		})
	}
}
