package apitrace

import (
	"testing"
	"time"
)

func TestTraceFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                       "0ms",
		4 * time.Microsecond:                    "0ms",
		290 * time.Microsecond:                  "0.29ms",
		65143 * time.Microsecond:                "65.14ms",
		time.Second + 860*time.Millisecond:      "1.86s",
		2*time.Second + 268400*time.Microsecond: "2.268s",
		time.Minute:                             "60s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
