package window

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	stagesetv1 "github.com/stageset/stageset-controller/api/v1"
)

// fuzzZones are the time zones a fuzzed window or instant picks from: the
// odd ones (half-hour and 30-minute DST shifts, a skipped day in Apia, a
// two-hour shift in Troll, Ramadan DST in Casablanca) and refused names.
var fuzzZones = []string{"", "UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
	"Pacific/Chatham", "Antarctica/Troll", "Africa/Casablanca", "America/Santiago", "Pacific/Apia", "Local", "Mars/Base"}

// maxFuzzDuration bounds a fuzzed window, so the brute-force reference
// scans a short span.
const maxFuzzDuration = 72 * time.Hour

// fuzzWindow builds one update window from fuzz inputs.
func fuzzWindow(schedule string, duration int64, zone uint8, isDeny bool) stagesetv1.UpdateWindow {
	d := time.Duration(duration)
	if d > 0 {
		d = time.Nanosecond + d%maxFuzzDuration
	}
	typ := stagesetv1.UpdateWindowAllow
	if isDeny {
		typ = stagesetv1.UpdateWindowDeny
	}
	return stagesetv1.UpdateWindow{Type: typ, Schedule: schedule, Duration: metav1.Duration{Duration: d},
		TimeZone: fuzzZones[int(zone)%len(fuzzZones)]}
}

// FuzzSchedule checks the window evaluator on random windows and instants:
// Parse and Validate agree, and on a parsed Schedule Open matches SPEC §5
// read literally (the brute-force reference) and NextOpening keeps its
// documented promises: the earliest open instant at or after t, exact to
// the nanosecond, in t's location. Nothing may panic: the windows are user
// input read by a long-running controller.
func FuzzSchedule(f *testing.F) {
	f.Add("0 8 * * *", int64(time.Hour), uint8(2), false, "30 2 * * *", int64(90*time.Minute), uint8(2), true, int64(1774746000), uint8(0))
	f.Add("30 2 * * *", int64(time.Hour), uint8(4), false, "", int64(0), uint8(0), false, int64(1775309400), uint8(4))
	f.Add("0 0 * * *", int64(24*time.Hour), uint8(10), false, "0 12 * * *", int64(time.Hour), uint8(10), true, int64(1325109600), uint8(10))
	f.Add("* * * * *", int64(time.Hour), uint8(0), true, "0 9 * * MON-FRI", int64(8*time.Hour), uint8(7), false, int64(1711846800), uint8(7))
	f.Add("0 0 29 2 *", int64(time.Minute), uint8(6), false, "@hourly", int64(59*time.Minute), uint8(5), true, int64(4107542400), uint8(1))
	f.Add("*/7 */5 1-7 * 1", int64(13*time.Second), uint8(8), false, "@weekly", int64(71*time.Hour), uint8(9), true, int64(-2208988800), uint8(3))
	f.Add("TZ=UTC", int64(time.Hour), uint8(11), false, "0 0 30 2 *", int64(-1), uint8(12), true, int64(0), uint8(11))
	f.Fuzz(func(t *testing.T, s1 string, d1 int64, z1 uint8, deny1 bool, s2 string, d2 int64, z2 uint8, deny2 bool, at int64, atZone uint8) {
		windows := []stagesetv1.UpdateWindow{fuzzWindow(s1, d1, z1, deny1)}
		if s2 != "" {
			windows = append(windows, fuzzWindow(s2, d2, z2, deny2))
		}
		s, err := Parse(windows)
		invalid := false
		for i, uw := range windows {
			path := field.NewPath("updateWindows").Index(i)
			for _, e := range Validate(uw, path) {
				invalid = true
				if !strings.HasPrefix(e.Field, path.String()+".") {
					t.Fatalf("Validate error without its field: %v", e)
				}
			}
		}
		if (err != nil) != invalid {
			t.Fatalf("Parse error %v, but Validate found problems: %v", err, invalid)
		}
		if err != nil {
			if s != nil || !strings.HasPrefix(err.Error(), "updateWindows[") {
				t.Fatalf("Parse error %q does not name the window, or came with a Schedule", err)
			}
			return
		}

		// Instants from 1900 to 2300, at any nanosecond, in any location.
		const span = 400 * 365 * 24 * 60 * 60
		loc, zerr := loadZone(fuzzZones[int(atZone)%len(fuzzZones)])
		if zerr != nil {
			loc = time.UTC
		}
		now := time.Unix(-2208988800+int64(uint64(at)%span), int64(uint64(at)%1e9)).In(loc)

		open := s.Open(now)
		if s.Open(now) != open || s.Open(now.UTC()) != open {
			t.Fatalf("Open(%s) depends on the call or on the location of the instant", now)
		}
		ref := newReference(t, windows, now.Add(-maxFuzzDuration-time.Hour), now.Add(time.Minute))
		if want := ref.open(now); open != want {
			t.Fatalf("Open(%s) = %v, the reference says %v", now, open, want)
		}

		next, ok := s.NextOpening(now)
		if open && (!ok || !next.Equal(now)) {
			t.Fatalf("open at %s, but NextOpening = %s, %v", now, next, ok)
		}
		if !ok {
			return
		}
		switch {
		case next.Before(now) || next.After(now.Add(Horizon)):
			t.Fatalf("NextOpening(%s) = %s, outside [t, t+Horizon]", now, next)
		case next.Location() != now.Location():
			t.Fatalf("NextOpening(%s) is in %s", now, next.Location())
		case !s.Open(next):
			t.Fatalf("NextOpening(%s) = %s, which is closed", now, next)
		case next.After(now) && s.Open(next.Add(-time.Nanosecond)):
			t.Fatalf("NextOpening(%s) = %s, but it is open a nanosecond earlier", now, next)
		}
		if again, ok := s.NextOpening(next); !ok || !again.Equal(next) {
			t.Fatalf("NextOpening(%s) = %s, but NextOpening of that = %s, %v", now, next, again, ok)
		}
	})
}
