package main

// Security tests: no secret in any output, served safely.

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"

	"golang.org/x/crypto/bcrypt"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Distinctive secrets, one of every kind the exporter holds.
var (
	secPerm   = kmsfake.AccessKey{AK: "SECPERMAK00000000000", SK: "SK-SECRET-7c1e2f9a4b8d6e3c5a1f0b9d8e7c6a5b"}
	secTemp   = kmsfake.AccessKey{AK: "SECTEMPAK00000000000", SK: "SK-TEMP-SECRET-3e8a1c6f9b2d4e7a0c5f8b1d", SecurityToken: "ST-SECRET-5b9e2a7c1f4d8e6b3a0c9f2e7d1b4a8c"}
	secUser   = kmsfake.User{Domain: "sec-domain", Name: "sec-user", Password: "PW-SECRET-9d4a7e1b6c3f8a2e5d0b"}
	secAgency = kmsfake.AccessKey{AK: "SECAGENCYAK000000000", SK: "SK-AGENCY-SECRET-1a6f3c8e2b9d5a7f4c0e", SecurityToken: "ST-AGENCY-SECRET-8c2e5a9f1d7b4e6c3a0f"}
	secWrong  = "SK-WRONG-SECRET-4f7a2d9c6e1b8a3f5d0c"
	// Short enough that YAML would quote it whole in a type error.
	secShortPW = "Q7!xw2Lm"
)

func allSecrets() []string {
	return []string{secPerm.SK, secTemp.SK, secTemp.SecurityToken, secUser.Password, secAgency.SK, secAgency.SecurityToken, secWrong, secShortPW}
}

// leaks reports every form of every secret found in out: as is, base64
// and URL-escaped, and the prefix of the tokens the fake IAM issues.
func leaks(out string) []string {
	var found []string
	for _, s := range allSecrets() {
		for _, form := range []string{s, base64.StdEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)), url.QueryEscape(s)} {
			if strings.Contains(out, form) {
				found = append(found, form)
			}
		}
		// A shortened echo, as YAML quotes long values in errors.
		if len(s) > 10 && strings.Contains(out, "`"+s[:7]) {
			found = append(found, s[:7]+"...")
		}
	}
	if strings.Contains(out, "MIIFake") {
		found = append(found, "an issued IAM token (MIIFake...)")
	}
	return found
}

// TestNoSecretInAnyOutput configures every kind of credential with
// distinctive secrets, scrapes with success and failure, reloads with good
// and bad configs at debug level, and searches everything the exporter
// wrote or answered for the secrets.
func TestNoSecretInAnyOutput(t *testing.T) {
	synctest.Test(t, testNoSecretInAnyOutput)
}

func testNoSecretInAnyOutput(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 7, Projects: 5, KeysPerProject: 10, AccessKey: secPerm})
	sc.AccessKeys = append(sc.AccessKeys, secTemp)
	sc.Users = []kmsfake.User{secUser}
	agency := secAgency
	sc.Agency = &agency
	n := &memnet.Network{}
	u := serveFake(t, n, "kms.test", sc, nil).URL()

	dir := t.TempDir()
	for name, content := range map[string]string{"perm_sk": secPerm.SK + "\n", "temp_token": secTemp.SecurityToken + "\n", "user_pw": secUser.Password + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := sc.Projects
	good := fmt.Sprintf(`credentials:
  perm: {access_key: %s, secret_key_file: %s, iam_endpoint: %s}
  temp: {access_key: %s, secret_key: %s, security_token_file: %s, iam_endpoint: %s}
  user:
    iam: {domain_name: %s, user_name: %s, password_file: %s}
    iam_endpoint: %s
  agency: {ecs_metadata: true, metadata_endpoint: %s, iam_endpoint: %s}
  wrong: {access_key: %s, secret_key: %s, iam_endpoint: %s}
targets:
  - {name: t-perm, region: %s, project_id: %s, credentials: perm, kms_endpoint: %s}
  - {name: t-temp, region: %s, project_id: %s, credentials: temp, kms_endpoint: %s}
  - {name: t-user, region: %s, credentials: user, kms_endpoint: %s}
  - {name: t-agency, region: %s, project_id: %s, credentials: agency, kms_endpoint: %s}
  - {name: t-wrong, region: %s, project_id: %s, credentials: wrong, kms_endpoint: %s}
`, secPerm.AK, filepath.Join(dir, "perm_sk"), u,
		secTemp.AK, secTemp.SK, filepath.Join(dir, "temp_token"), u,
		secUser.Domain, secUser.Name, filepath.Join(dir, "user_pw"), u,
		u, u,
		secPerm.AK, secWrong, u,
		p[0].Region, p[0].ID, u, p[1].Region, p[1].ID, u, p[2].Region, u, p[3].Region, p[3].ID, u, p[4].Region, p[4].ID, u)

	e := startExporter(t, n, nil, good)
	outputs := map[string]string{}
	get := func(path string) (int, string) {
		code, body := e.get(t, path)
		outputs["GET "+path] += body
		return code, body
	}
	reload := func(name, content string) (int, string) {
		e.writeConfig(t, content)
		code, body := e.reload(t)
		outputs["POST /-/reload "+name] = body
		return code, body
	}

	// Scrapes that succeed (four kinds) and fail (the wrong SK).
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	mfs := parse(t, body)
	for i, want := range []float64{1, 1, 1, 1, 0} {
		if v, _ := value(mfs, "kms_up", map[string]string{"project_id": p[i].ID}); v != want {
			t.Errorf("kms_up of project %d = %v, want %v\n%s", i, v, want, e.logs)
		}
	}
	for _, target := range []string{"t-perm", "t-temp", "t-user", "t-agency", "t-wrong", "nope", ""} {
		get("/probe?target=" + target)
	}
	get("/probe")
	// The debug logs of those scrapes, and the landing page that lists them
	// with their errors and the paused credential.
	for _, target := range []string{"t-perm", "t-temp", "t-user", "t-agency", "t-wrong"} {
		if code, body := get("/probe?debug=true&target=" + target); code != 200 || !strings.Contains(body, "API calls, in order") {
			t.Errorf("debug log of %s: %d %s", target, code, body)
		}
	}
	for id := 1; id <= 20; id++ {
		get(fmt.Sprintf("/probe/debug?id=%d", id))
	}
	for _, path := range []string{"/", "/targets", "/-/healthy", "/-/ready", "/-/reload", "/nope"} {
		get(path)
	}
	// The logs must show the logins and failures whose secrets they must not.
	logs := strings.Join(debugLogs(outputs), "")
	for _, want := range []string{"endpoint=iam-token", "endpoint=ecs-metadata", "status=401", "paused until"} {
		if !strings.Contains(logs, want) {
			t.Errorf("no debug log shows %s; the test did not exercise what it should", want)
		}
	}
	for _, header := range []string{"Signature=", "SDK-HMAC-SHA256", "X-Auth-Token", "X-Security-Token", "X-Metadata-Token"} {
		if strings.Contains(logs+outputs["GET /"], header) {
			t.Errorf("a debug log or the landing page shows %s", header)
		}
	}
	if !strings.Contains(outputs["GET /"], `class="kms-paused"`) {
		t.Error("the landing page does not show the paused credential; the test did not exercise what it should")
	}

	// Reloads: good, failing validation, YAML errors on the secret lines,
	// a missing secret file.
	if code, body := reload("good", good); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	inline := strings.Replace(good, "secret_key_file: "+filepath.Join(dir, "perm_sk"), "secret_key: "+secPerm.SK, 1)
	for name, bad := range map[string]string{
		"duplicate target":  inline + "  - {name: t-perm, region: x}\n",
		"two kinds":         strings.Replace(inline, "{ecs_metadata: true,", "{ecs_metadata: true, secret_key: "+secAgency.SK+",", 1),
		"unterminated":      strings.Replace(inline, "secret_key: "+secPerm.SK, "secret_key: \""+secPerm.SK, 1),
		"colon in secret":   strings.Replace(inline, "secret_key: "+secTemp.SK, "secret_key: "+secTemp.SK+": x", 1),
		"tab before secret": strings.Replace(good, "  wrong: {", "\twrong: {", 1),
		"password with *":   strings.Replace(good, "password_file: "+filepath.Join(dir, "user_pw"), "password: *"+secShortPW, 1),
		"secret as a bool":  strings.Replace(good, "ecs_metadata: true", "ecs_metadata: "+secShortPW, 1),
		"missing file":      strings.Replace(good, filepath.Join(dir, "user_pw"), filepath.Join(dir, "no_such_pw"), 1),
	} {
		code, body := reload(name, bad)
		if code != 500 || !strings.HasPrefix(body, "failed to reload config:") {
			t.Errorf("bad reload %q: %d %s", name, code, body)
		}
		if err := e.app.reload(); err == nil {
			t.Errorf("bad reload %q accepted", name)
		} else {
			outputs["reload error "+name] = err.Error()
		}
	}
	if code, _ := reload("recovery", good); code != 200 {
		t.Fatalf("recovery reload: %d", code)
	}
	get("/metrics")

	// The single-target mode reads its secrets from the environment.
	env := map[string]string{"HUAWEICLOUD_SDK_AK": secTemp.AK, "HUAWEICLOUD_SDK_SK": secTemp.SK, "HUAWEICLOUD_SDK_SECURITY_TOKEN": secTemp.SecurityToken}
	envExp := startExporter(t, n, func(k string) string { return env[k] }, "", "--kms.region="+p[1].Region, "--kms.project-id="+p[1].ID, "--kms.endpoint="+u)
	code, body = envExp.get(t, "/metrics")
	if v, _ := value(parse(t, body), "kms_up", map[string]string{"project_id": p[1].ID}); code != 200 || v != 1 {
		t.Errorf("single target from the environment: %d, kms_up %v", code, v)
	}
	outputs["env /metrics"] = body
	delete(env, "HUAWEICLOUD_SDK_AK")
	if err := envExp.app.reload(); err == nil {
		t.Error("reload without HUAWEICLOUD_SDK_AK accepted")
	} else {
		outputs["env reload error"] = err.Error()
	}
	outputs["env logs"] = envExp.logs.String()
	outputs["logs"] = e.logs.String()

	for name, out := range outputs {
		if found := leaks(out); len(found) > 0 {
			t.Errorf("%s shows secrets %q:\n%s", name, found, out)
		}
	}
	// The test must have seen what it searches: failures were logged.
	for _, want := range []string{"cannot reload config", "status=401", "credential paused"} {
		if !strings.Contains(outputs["logs"], want) {
			t.Errorf("logs lack %q; the test did not exercise what it should:\n%s", want, outputs["logs"])
		}
	}
}

// debugLogs returns every debug log in outputs.
func debugLogs(outputs map[string]string) []string {
	var logs []string
	for k, v := range outputs {
		if strings.Contains(k, "debug") {
			logs = append(logs, v)
		}
	}
	return logs
}

// TestBinaryTLSAndBasicAuth runs the built binary behind TLS and basic auth
// from --web.config.file: plain HTTP gets no metrics, a wrong or missing
// password 401, the right one the metrics.
func TestBinaryTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	cert, leaf := selfSignedCert(t, "127.0.0.1")
	certFile, keyFile := writeCert(t, dir, cert)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	const user, password = "prometheus", "right-password-5e1f"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, fmt.Appendf(nil, "tls_server_config:\n  cert_file: %s\n  key_file: %s\nbasic_auth_users:\n  %s: %s\n", certFile, keyFile, user, hash), 0o600); err != nil {
		t.Fatal(err)
	}
	r, base := startBinary(t, "https", "--demo", "--web.config.file="+webConfig)
	addr := strings.TrimPrefix(base, "https://")

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	get := func(scheme, path, user, pw string) *http.Request {
		req, err := http.NewRequest("GET", scheme+"://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != "" {
			req.SetBasicAuth(user, pw)
		}
		return req
	}

	// Plain HTTP: the TLS listener answers 400 and serves nothing.
	plain := &http.Client{Transport: &http.Transport{}}
	defer plain.CloseIdleConnections()
	if resp, err := plain.Do(get("http", "/metrics", user, password)); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(body), "kms_up") {
			t.Errorf("plain HTTP served metrics: %d", resp.StatusCode)
		}
	}
	// A client that does not trust the certificate gives up.
	if resp, err := plain.Do(get("https", "/metrics", user, password)); err == nil {
		resp.Body.Close()
		t.Error("untrusted certificate accepted")
	}
	for name, req := range map[string]*http.Request{
		"no password":    get("https", "/metrics", "", ""),
		"wrong password": get("https", "/metrics", user, "wrong-password"),
		"wrong user":     get("https", "/metrics", "someone", password),
		"probe, wrong":   get("https", "/probe?target=demo-cn-north-4", user, "x"),
		"pprof, none":    get("https", "/debug/pprof/heap", "", ""),
		"pprof, wrong":   get("https", "/debug/pprof/profile?seconds=1", user, "x"),
	} {
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "kms_up") {
			t.Errorf("%s: %d, want 401 without metrics", name, resp.StatusCode)
		}
	}
	resp, err := client.Do(get("https", "/metrics", user, password))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "kms_up{") {
		t.Errorf("right password: %d\n%.500s", resp.StatusCode, body)
	}
	if resp.TLS == nil {
		t.Error("metrics not served over TLS")
	}

	r.Signal(t, syscall.SIGTERM)
	if err := r.Wait(t); err != nil {
		t.Errorf("exit: %v\n%s", err, r.Output())
	}
	logs := r.Stderr()
	for _, s := range []string{password, string(hash), kmsfake.DemoAccessKey.SK} {
		if strings.Contains(logs, s) {
			t.Errorf("logs show %q", s)
		}
	}
}
