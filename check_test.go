package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// checkWith runs --config.check on config and returns its exit code and report.
func checkWith(t *testing.T, config string) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kms.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, err := parseFlags([]string{"--config.file=" + path, "--config.check"})
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLogger(&syncbuf.Buffer{}, "info", "logfmt")
	a, err := newApp(s, logger, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	var out bytes.Buffer
	code := a.checkConfig(&out)
	if strings.Contains(out.String(), testAK.SK) {
		t.Errorf("the report shows the secret key:\n%s", out.String())
	}
	return code, out.String()
}

func TestConfigCheck(t *testing.T) {
	sc := accountScenario()
	fake := kmsfake.Start(sc)
	t.Cleanup(fake.Close)
	closed := kmsfake.Start(sc)
	closed.Close() // nothing listens there any more

	code, out := checkWith(t, accountConfig(fake.URL(), ""))
	for _, want := range []string{
		"config: OK (",
		"static targets: 1\n  static-cn  region=cn-north-4  credentials=prod  project_id=(looked up in IAM: the project named cn-north-4)\n",
		"discovery credentials=prod: 2 targets\n",
		"  prod/ap-southeast-1       region=ap-southeast-1  project_id=" + sc.Projects[1].ID + "\n",
		"  prod/cn-north-4_payments  region=cn-north-4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d for a good config", code)
	}

	// IAM out of reach: said, and no failure.
	unreachable := strings.Replace(accountConfig(fake.URL(), ""), "iam_endpoint: "+fake.URL(), "iam_endpoint: "+closed.URL(), 1)
	code, out = checkWith(t, unreachable)
	if code != 0 || !strings.Contains(out, "discovery credentials=prod: cannot reach IAM, discovered targets unknown: ") || !strings.Contains(out, "static-cn") {
		t.Errorf("IAM unreachable: exit %d\n%s", code, out)
	}

	// IAM refusing the credential is a failure.
	wrong := strings.Replace(accountConfig(fake.URL(), ""), testAK.SK, "not-the-secret-key", 1)
	code, out = checkWith(t, wrong)
	if code != 1 || !strings.Contains(out, "discovery credentials=prod: FAILED: IAM refused to list the projects: ") || !strings.Contains(out, "401") {
		t.Errorf("wrong secret: exit %d\n%s", code, out)
	}

	// A config error, and a secret file that cannot be read.
	for _, bad := range []string{
		strings.Replace(accountConfig(fake.URL(), ""), `exclude: "_sandbox$"`, `exclude: "(["`, 1),
		strings.Replace(accountConfig(fake.URL(), ""), "secret_key: "+testAK.SK, "secret_key_file: /nonexistent/sk", 1),
	} {
		code, out = checkWith(t, bad)
		if code != 1 || !strings.HasPrefix(out, "config: FAILED: ") {
			t.Errorf("bad config: exit %d\n%s", code, out)
		}
	}
}

// run exits with the check's code and serves nothing.
func TestConfigCheckExitCode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kms.yml")
	if err := os.WriteFile(path, []byte("credentials:\n  a: {access_key: a, secret_key: s}\ntargets:\n  - {name: x, region: cn-north-4, project_id: p}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncbuf.Buffer
	if code := run([]string{"--config.file=" + path, "--config.check", "--web.listen-address=127.0.0.1:0"}, &logs, noEnv); code != 0 {
		t.Errorf("good config: exit %d\n%s", code, logs.String())
	}
	if code := run([]string{"--config.file=" + path + ".missing", "--config.check"}, &logs, noEnv); code != 1 {
		t.Errorf("missing config: exit %d", code)
	}
}
