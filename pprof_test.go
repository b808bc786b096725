package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestPprofLinksAnswer follows every /debug/pprof link of the landing page
// (heap, a CPU profile) and checks the pprof index lists the profiles.
func TestPprofLinksAnswer(t *testing.T) {
	e := newTestEnv(t, 1)
	code, landing := e.get(t, "/")
	if code != 200 {
		t.Fatalf("landing page: %d", code)
	}
	links := regexp.MustCompile(`href="/?(debug/pprof/[^"]*)"`).FindAllStringSubmatch(landing, -1)
	if len(links) < 2 {
		t.Fatalf("landing page links %d pprof pages, want heap and profile", len(links))
	}
	for _, l := range links {
		path := "/" + strings.ReplaceAll(l[1], "&amp;", "&")
		// A one-second CPU profile instead of the link's 60 seconds.
		path = strings.Replace(path, "seconds=60", "seconds=1", 1)
		code, body := e.get(t, path)
		if code != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", path, code, len(body))
		}
	}
	code, index := e.get(t, "/debug/pprof/")
	if code != 200 || !strings.Contains(index, "goroutine") || !strings.Contains(index, "heap") {
		t.Errorf("/debug/pprof/: %d\n%.300s", code, index)
	}
	if code, _ := e.get(t, "/debug/pprof/no-such-profile"); code != 404 {
		t.Errorf("unknown profile: %d, want 404", code)
	}
}
