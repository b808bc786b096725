package main

import (
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// wrongSecretRun scrapes /metrics of two targets on a wrong secret every
// 15s for 6.5 minutes at logLevel, and returns the log and the number of
// requests that reached the API.
func wrongSecretRun(t *testing.T, logLevel string) (logs string, requests int) {
	e := newTestEnv(t, 2)
	wrong := strings.Replace(e.configYAML(2), testAK.SK, "wrong-"+testAK.SK, 1)
	x := startExporter(t, e.net, nil, wrong, "--log.level="+logLevel)
	e.fake.ResetRequests()
	for end := time.Now().Add(6*time.Minute + 30*time.Second); time.Now().Before(end); time.Sleep(15 * time.Second) {
		if code, _ := x.get(t, "/metrics"); code != 200 {
			t.Fatalf("/metrics answered %d", code)
		}
	}
	return x.logs.String(), e.fake.Requests("")
}

// TestWrongSecretQuietLogs: a wrong secret gives one warning per pause,
// with its length and a hint, and no error line for the scrapes it fails.
func TestWrongSecretQuietLogs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, requests := wrongSecretRun(t, "info")
		var warns, errs []string
		for _, line := range strings.Split(logs, "\n") {
			switch {
			case strings.HasPrefix(line, "level=warn"):
				warns = append(warns, line)
			case strings.HasPrefix(line, "level=error"):
				errs = append(errs, line)
			}
		}
		if requests != 4 {
			t.Errorf("%d requests in 6.5 minutes, want 4 (at 0s, 30s, 90s, 301s)", requests)
		}
		if len(warns) != requests || len(errs) != 0 {
			t.Errorf("%d warnings and %d error lines for %d failed requests, want one warning per pause and no error:\n%s", len(warns), len(errs), requests, logs)
		}
		for i, pause := range []string{"30s", "1m0s", "3m31s"} {
			if i < len(warns) && (!strings.Contains(warns[i], "pause="+pause) || !strings.Contains(warns[i], `hint="check access_key and secret_key`) ||
				!strings.Contains(warns[i], "credential=main") || !strings.Contains(warns[i], "status=401")) {
				t.Errorf("warning %d lacks pause=%s, the hint, the credential or the status: %s", i+1, pause, warns[i])
			}
		}
	})
}

// TestDebugLogsCallsAndSkips: --log.level=debug shows every API call with
// its endpoint, status and duration, and each call skipped during a pause
// with the endpoint of its own collector.
func TestDebugLogsCallsAndSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs, requests := wrongSecretRun(t, "debug")
		calls := regexp.MustCompile(`level=debug .*msg="API call" credential=main endpoint=\S+ region=\S+ status=401 duration=\S+`).FindAllString(logs, -1)
		if len(calls) != requests {
			t.Errorf("%d API call lines for %d requests:\n%s", len(calls), requests, logs)
		}
		endpointOf := map[string]string{"quotas": kmsapi.EndpointQuotas, "instances": kmsapi.EndpointInstances, "keys": kmsapi.EndpointResourceInstances, "regions": kmsapi.EndpointRegions}
		skipped := regexp.MustCompile(`level=debug .*msg="collector skipped: credential paused" target=t\d collector=(\w+) endpoint=(\S+)`).FindAllStringSubmatch(logs, -1)
		if len(skipped) < 100 {
			t.Errorf("%d skipped calls logged, want one per collector and target of every scrape in a pause:\n%s", len(skipped), logs)
		}
		for _, m := range skipped {
			if endpointOf[m[1]] != m[2] {
				t.Errorf("collector %s logged with endpoint %s, want %s", m[1], m[2], endpointOf[m[1]])
			}
		}
	})
}

// TestWrongSecretQuietDiscovery: a discovery entry on a wrong secret adds
// no warning of its own; its refresh, retried every minute, fails on the
// pause like every collector does, and the credential's one warning per
// pause says why.
func TestWrongSecretQuietDiscovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestEnv(t, 1)
		wrong := strings.Replace(e.configYAML(1), testAK.SK, "wrong-"+testAK.SK, 1) +
			"discovery:\n  - kms_endpoint: " + e.fake.URL() + "\n"
		e.fake.ResetRequests()
		x := startExporter(t, e.net, nil, wrong)
		defer x.app.close() // stops discovery
		for end := time.Now().Add(6*time.Minute + 30*time.Second); time.Now().Before(end); time.Sleep(15 * time.Second) {
			if code, _ := x.get(t, "/metrics"); code != 200 {
				t.Fatalf("/metrics answered %d", code)
			}
		}
		logs := x.logs.String()
		warns := regexp.MustCompile(`(?m)^level=warn .*$`).FindAllString(logs, -1)
		requests := e.fake.Requests("")
		if requests == 0 || len(warns) != requests || strings.Contains(logs, "level=error") {
			t.Errorf("%d warnings for %d failed requests, want one per pause and no error:\n%s", len(warns), requests, logs)
		}
		for _, w := range warns {
			if !strings.Contains(w, "credential paused") {
				t.Errorf("a warning that is not the credential's pause: %s", w)
			}
		}
	})
}
