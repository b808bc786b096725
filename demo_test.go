package main

import (
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// TestDemoTryIt runs an exporter on the config --demo prints, with each of
// its two credentials, against the demo fake: every target is up.
func TestDemoTryIt(t *testing.T) {
	sc := kmsfake.Demo(time.Now())
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	text := demoTryIt(fake.URL(), sc)
	for _, want := range []string{fake.URL(), kmsfake.DemoAccessKey.AK, kmsfake.DemoAccessKey.SK, kmsfake.DemoUser.Password} {
		if !strings.Contains(text, want) {
			t.Errorf("printed config lacks %q", want)
		}
	}
	for _, cred := range []string{"demo", "demo-user"} {
		t.Run(cred, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "demo.yml")
			cfg := strings.ReplaceAll(text, "credentials: demo\n", "credentials: "+cred+"\n")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			s, _, err := parseFlags([]string{"--config.file=" + file})
			if err != nil {
				t.Fatal(err)
			}
			logger, _ := newLogger(io.Discard, "info", "logfmt")
			a, err := newApp(s, logger, noEnv)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.reload(); err != nil {
				t.Fatalf("the printed config does not load: %v\n%s", err, cfg)
			}
			rec := httptest.NewRecorder()
			a.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
			code, body := rec.Code, rec.Body.String()
			if code != 200 {
				t.Fatalf("/metrics: %d", code)
			}
			mfs := parse(t, body)
			for _, p := range sc.Projects {
				labels := map[string]string{"region": p.Region, "project_id": p.ID}
				if v, ok := value(mfs, "kms_up", labels); !ok || v != 1 {
					t.Errorf("kms_up%v = %v (present %v)", labels, v, ok)
				}
			}
		})
	}
}
