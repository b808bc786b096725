package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Errors about the config built from flags and environment name the flag
// or variable the value came from, never the value.
func TestSingleTargetErrorsNameTheFlag(t *testing.T) {
	secret := strings.Repeat("S", 5<<20)
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--kms.region=" + strings.Repeat("r", 10<<20)}, map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"},
			"--kms.region: longer than 256 bytes"},
		{[]string{"--kms.region=cn_north_4"}, map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"},
			`--kms.region: \"cn_north_4\" is not a region ID such as cn-north-4`},
		{[]string{"--kms.region=cn-north-4"}, map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": secret},
			"HUAWEICLOUD_SDK_SK: longer than 1024 bytes"},
		{[]string{"--kms.region=cn-north-4"}, map[string]string{"HUAWEICLOUD_SDK_AK": "AK\x00", "HUAWEICLOUD_SDK_SK": "SK"},
			"HUAWEICLOUD_SDK_AK: holds control characters or invalid UTF-8"},
	} {
		var out bytes.Buffer
		code := run(append(tc.args, "--web.listen-address=127.0.0.1:0"), &out, func(k string) string { return tc.env[k] })
		if code != 1 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("exit %d, want 1 and a log with %q:\n%.2000s", code, tc.want, out.String())
		}
		if strings.Contains(out.String(), secret[:100]) {
			t.Error("the log repeats the value")
		}
	}
}

// A region the exporter does not know is loaded, with a warning.
func TestUnknownRegionWarns(t *testing.T) {
	s, _, err := parseFlags([]string{"--kms.region=xx-nowhere-1", "--kms.project-id=p"})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger, _ := newLogger(&logs, "info", "logfmt")
	env := map[string]string{"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"}
	a, err := newApp(s, logger, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	want := `msg="--kms.region: region \"xx-nowhere-1\" is not one this exporter knows; its KMS endpoint is taken to be https://kms.xx-nowhere-1.myhuaweicloud.com"`
	if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "level=warn") {
		t.Errorf("no warning %s in:\n%s", want, logs.String())
	}
}

// A typo in a key is logged on one line, in the config's words.
func TestConfigTypoLogged(t *testing.T) {
	a, cfgPath, _, logs := fileTestApp(t)
	writeFile(t, cfgPath, "credentials:\n  prod:\n    access_key: AK\n    secret_kye: SK\n"+
		"targets:\n  - {name: t, region: cn-north-4, project_id: p}\n")
	if err := a.reload(); err == nil {
		t.Fatal("reload accepted a typo")
	}
	want := `err="` + cfgPath + `: line 4: credentials.prod: unknown key \"secret_kye\" (did you mean \"secret_key\"?)"`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs)
	}
	if strings.Contains(logs.String(), `\n`) {
		t.Errorf("a log line holds a literal \\n:\n%s", logs)
	}
}

// An unknown /probe target is answered with the names there are.
func TestProbeUnknownTargetListsNames(t *testing.T) {
	a, _, _, _ := fileTestApp(t)
	rec := httptest.NewRecorder()
	a.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/probe?target=x", nil))
	want := `unknown target "x": not in the config; one of: t` + "\n"
	if rec.Code != http.StatusBadRequest || rec.Body.String() != want {
		t.Errorf("%d %q, want 400 %q", rec.Code, rec.Body, want)
	}
}

// fileTestApp is an exporter whose config file (in its own directory, with
// the secret in the file "sk") has one target; nothing calls the API.
func fileTestApp(t *testing.T) (a *app, cfgPath, skPath string, logs *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cfgPath, skPath = filepath.Join(dir, "kms.yml"), filepath.Join(dir, "sk")
	writeFile(t, skPath, "file-test-secret\n")
	writeFile(t, cfgPath, "credentials:\n  prod: {access_key: AK, secret_key_file: sk}\n"+
		"targets:\n  - {name: t, region: cn-north-4, project_id: p, kms_endpoint: 'http://127.0.0.1:1'}\n")
	s, _, err := parseFlags([]string{"--config.file=" + cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	logs = &bytes.Buffer{}
	logger, _ := newLogger(logs, "info", "logfmt")
	if a, err = newApp(s, logger, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.close)
	if err := a.reload(); err != nil {
		t.Fatal(err)
	}
	return a, cfgPath, skPath, logs
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// --config.check says what a start would warn about.
func TestConfigCheckWarns(t *testing.T) {
	a, cfgPath, _, _ := fileTestApp(t)
	writeFile(t, cfgPath, "credentials:\n  prod: {access_key: AK, secret_key_file: sk}\n"+
		"targets:\n  - {name: t, region: xx-nowhere-1, project_id: p}\n")
	var out bytes.Buffer
	if code := a.checkConfig(&out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	want := `warning: targets[0].region: region "xx-nowhere-1" is not one this exporter knows`
	if !strings.Contains(out.String(), want) {
		t.Errorf("no %q in:\n%s", want, out.String())
	}
}
