package cloudsink

import (
	"math"
	"net/http"
	"testing"
	"time"
)

// Retry-After is outside bytes: whatever it says, the wait is never
// negative, and a huge one is beyond any maximum (not retried), never a
// retry at once.
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in    string
		want  time.Duration
		given bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"-3", 0, false},
		{"1e20", math.MaxInt64, true},
		{"99999999999999999999", math.MaxInt64, true},
		{"Inf", math.MaxInt64, true},
		{"NaN", 0, false},
		{now.Add(time.Minute).Format(http.TimeFormat), time.Minute, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{"soon", 0, false},
	} {
		got, given := retryAfter(tc.in, now)
		if got != tc.want || given != tc.given {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, given, tc.want, tc.given)
		}
	}
	p := retryPolicy{maxWait: 2 * time.Minute}
	if w, ok := p.retryWait("1e20", 1); ok || w < 0 {
		t.Errorf("retryWait(1e20) = %v, %v; want a wait beyond the maximum, not retried", w, ok)
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"7", "1e20", "Inf", "-0", "Wed, 21 Oct 2015 07:28:00 GMT", "0x1p70", "1e-400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if got, _ := retryAfter(v, time.Now()); got < 0 {
			t.Fatalf("retryAfter(%q) = %v: negative", v, got)
		}
	})
}
