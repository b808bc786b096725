package main

// The test harness. The exporter and the fake KMS API it calls run in this
// process, connected by an in-memory network (internal/memnet), so that a
// test can run inside a testing/synctest bubble: deadlines, retries and
// latencies then take fake time, and no assertion depends on how fast the
// machine is. The tests of the real process share one built binary.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/internal/memnet"
	"github.com/kms-exporter/kms_exporter/internal/syncbuf"
	"github.com/kms-exporter/kms_exporter/internal/testbin"
	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

func TestMain(m *testing.M) { testbin.Main(m) }

// testAK is the credential the tests' fakes accept.
var testAK = kmsfake.AccessKey{AK: "MAINTESTAK0000000000", SK: "main-test-secret-key-0000000000000000"}

func noEnv(string) string { return "" }

// fakeAPI is a kmsfake served on an in-memory network.
type fakeAPI struct {
	*kmsfake.Server
	url string
	srv *http.Server
}

// serveFake serves a fake of sc at http://host (https:// with cert) on n
// until the test ends.
func serveFake(t testing.TB, n *memnet.Network, host string, sc kmsfake.Scenario, cert *tls.Certificate) *fakeAPI {
	t.Helper()
	f := &fakeAPI{Server: kmsfake.New(sc)}
	var tlsConfig *tls.Config
	scheme, port := "http", ":80"
	if cert != nil {
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		scheme, port = "https", ":443"
	}
	var err error
	if f.srv, err = n.Serve(host+port, f.Server, tlsConfig); err != nil {
		t.Fatal(err)
	}
	f.url = scheme + "://" + host
	t.Cleanup(f.Close)
	return f
}

// URL is the base URL of the fake's APIs.
func (f *fakeAPI) URL() string { return f.url }

// Close releases hanging requests, then stops serving.
func (f *fakeAPI) Close() {
	f.Server.Close()
	f.srv.Close()
}

// exporter is the app under test, served on an in-memory network.
type exporter struct {
	app    *app
	base   string // http://exporter.test, or exporter-2.test ... when taken
	logs   *syncbuf.Buffer
	config string       // path of the config file
	api    *http.Client // the exporter's client to the API
	client *http.Client // the test's client to the exporter
	srv    *http.Server
}

// apiClient is kmsapi's client as the exporter uses it, certificate checks
// and all, dialling on n.
func apiClient(n *memnet.Network) *http.Client {
	c := kmsapi.NewHTTPClient()
	tr := c.Transport.(*http.Transport)
	tr.DialContext = n.DialContext
	tr.Proxy = nil
	return c
}

// startExporter runs the app on n with flags, plus --config.file when
// configYAML is not "". The log level is debug unless flags set it; getenv
// nil is an empty environment.
func startExporter(t testing.TB, n *memnet.Network, getenv func(string) string, configYAML string, flags ...string) *exporter {
	t.Helper()
	e := &exporter{logs: &syncbuf.Buffer{}, api: apiClient(n)}
	args := []string{"--kms.requests-per-second=1000"}
	if configYAML != "" {
		e.config = filepath.Join(t.TempDir(), "kms.yml")
		e.writeConfig(t, configYAML)
		args = append(args, "--config.file="+e.config)
	}
	if !strings.Contains(strings.Join(flags, " "), "--log.level") {
		args = append(args, "--log.level=debug")
	}
	s, _, err := parseFlags(append(args, flags...))
	if err != nil {
		t.Fatal(err)
	}
	if getenv == nil {
		getenv = noEnv
	}
	logger, _ := newLogger(e.logs, s.logLevel, s.logFormat)
	if e.app, err = newApp(s, logger, getenv); err != nil {
		t.Fatal(err)
	}
	e.app.httpClient = e.api
	if err := e.app.reload(); err != nil {
		t.Fatalf("config: %v\n%s", err, e.logs)
	}
	for i := 1; e.srv == nil; i++ {
		host := "exporter.test"
		if i > 1 {
			host = fmt.Sprintf("exporter-%d.test", i)
		}
		if e.srv, err = n.Serve(host+":80", e.app.handler(), nil); err != nil && i == 10 {
			t.Fatal(err)
		}
		e.base = "http://" + host
	}
	e.client = &http.Client{Transport: n.Transport()}
	t.Cleanup(e.close)
	return e
}

// startSingleTarget runs the app without a config file, in single-target
// mode for p's region, against the fake at u with credentials from getenv,
// and checks that a probe finds p up.
func startSingleTarget(t testing.TB, n *memnet.Network, getenv func(string) string, p kmsfake.Project, u string) *exporter {
	t.Helper()
	e := startExporter(t, n, getenv, "", "--kms.region="+p.Region, "--kms.endpoint="+u, "--iam.endpoint="+u)
	code, body := e.get(t, "/probe?target="+p.Region)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if v, ok := value(parse(t, body), "kms_up", map[string]string{"region": p.Region, "project_id": p.ID}); !ok || v != 1 {
		t.Errorf("kms_up = %v (present %v)\n%s", v, ok, e.logs)
	}
	return e
}

// close stops the server and closes idle connections, so that no
// goroutine is left; a test checking for leaks calls it before it checks.
func (e *exporter) close() {
	e.srv.Close()
	e.client.CloseIdleConnections()
	e.api.CloseIdleConnections()
}

func (e *exporter) writeConfig(t testing.TB, content string) {
	t.Helper()
	if err := os.WriteFile(e.config, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// request sends method path to the exporter with header (name, value, ...)
// and returns status and body.
func (e *exporter) request(t testing.TB, method, path string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	code, _, body := e.send(t, req)
	return code, body
}

// getFull is a GET that also returns the answer's headers.
func (e *exporter) getFull(t testing.TB, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest("GET", e.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.send(t, req)
}

// send sends req (to e.base) and returns status, headers and body.
func (e *exporter) send(t testing.TB, req *http.Request) (int, http.Header, string) {
	t.Helper()
	return roundTrip(t, e.client, req)
}

// roundTrip sends req with client and returns status, headers and body.
func roundTrip(t testing.TB, client *http.Client, req *http.Request) (int, http.Header, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func (e *exporter) get(t testing.TB, path string, header ...string) (int, string) {
	t.Helper()
	return e.request(t, "GET", path, header...)
}

func (e *exporter) reload(t testing.TB) (int, string) {
	t.Helper()
	return e.request(t, "POST", "/-/reload")
}

// scrape GETs path with Prometheus' timeout header (none if "") and
// returns status, body and how long it took on the bubble's clock.
func (e *exporter) scrape(t testing.TB, path, timeout string) (int, string, time.Duration) {
	t.Helper()
	var header []string
	if timeout != "" {
		header = []string{"X-Prometheus-Scrape-Timeout-Seconds", timeout}
	}
	start := time.Now()
	code, body := e.get(t, path, header...)
	return code, body, time.Since(start)
}

// apiCounts reads kms_api_requests_total from the exporter's own registry,
// without a scrape, keyed "endpoint code".
func (e *exporter) apiCounts(t testing.TB) map[string]float64 {
	t.Helper()
	mfs, err := e.app.own.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "kms_api_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[labelOf(m, "endpoint")+" "+labelOf(m, "code")] += m.GetCounter().GetValue()
		}
	}
	return out
}

// testEnv is an exporter with one fake whose projects are its targets.
type testEnv struct {
	*exporter
	net  *memnet.Network
	fake *fakeAPI
	sc   kmsfake.Scenario
}

// threeProjects is the scenario of newTestEnv.
func threeProjects() kmsfake.Scenario {
	return kmsfake.Generate(kmsfake.GenerateOptions{Seed: 1, Projects: 3, KeysPerProject: 30, AccessKey: testAK})
}

// newTestEnv serves a fake of three projects and an exporter whose config
// holds the first n of them, as targets t0, t1, ...
func newTestEnv(t testing.TB, n int, flags ...string) *testEnv {
	t.Helper()
	return newTestEnvOf(t, threeProjects(), n, flags...)
}

func newTestEnvOf(t testing.TB, sc kmsfake.Scenario, n int, flags ...string) *testEnv {
	t.Helper()
	e := &testEnv{net: &memnet.Network{}, sc: sc}
	e.fake = serveFake(t, e.net, "kms.test", sc, nil)
	e.exporter = startExporter(t, e.net, nil, e.configYAML(n), flags...)
	return e
}

// configYAML is a config whose targets are the first n projects.
func (e *testEnv) configYAML(n int) string {
	return akskConfig(testAK, e.fake.URL(), e.fake.URL(), e.sc.Projects[:n])
}

// akskConfig is a config with one AK/SK credential and one target per
// project, named t0, t1, ..., all on kmsURL.
func akskConfig(ak kmsfake.AccessKey, iamURL, kmsURL string, projects []kmsfake.Project) string {
	var b strings.Builder
	fmt.Fprintf(&b, "credentials:\n  main:\n    access_key: %s\n    secret_key: %s\n    iam_endpoint: %s\ntargets:\n", ak.AK, ak.SK, iamURL)
	writeTargets(&b, kmsURL, projects)
	return b.String()
}

func writeTargets(b *strings.Builder, kmsURL string, projects []kmsfake.Project) {
	for i, p := range projects {
		fmt.Fprintf(b, "  - name: t%d\n    region: %s\n    project_id: %s\n    kms_endpoint: %s\n", i, p.Region, p.ID, kmsURL)
	}
}

func parse(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, body)
	}
	return mfs
}

// value finds the sample of name whose labels include want; ok false when none.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		for k, v := range want {
			if labelOf(m, k) != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
		return 0, true
	}
	return 0, false
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// startBinary runs the built exporter on 127.0.0.1 on a port of the
// kernel's choosing and returns the process and its base URL, once it
// listens.
func startBinary(t *testing.T, scheme string, args ...string) (*testbin.Proc, string) {
	t.Helper()
	p := testbin.Start(t, "kms_exporter", testbin.Binary(t), append(args, "--web.listen-address=127.0.0.1:0")...)
	return p, scheme + "://" + p.ListenAddress(t)
}

// selfSignedCert makes an ECDSA certificate for hosts (names or IPs).
func selfSignedCert(t testing.TB, hosts ...string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "kms_exporter test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, cert
}

// writeCert writes c and its key as PEM files into dir.
func writeCert(t testing.TB, dir string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalECPrivateKey(c.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
