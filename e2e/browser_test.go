//go:build e2e

// The browser test: Debian's chromium-headless-shell renders the landing
// page of kms_exporter --demo. The rendered DOM must show one row per target
// (the three configured demo projects and the sub-projects discovery finds),
// mark the project above 90% of its CMK quota, and show the same
// pending-deletion counts as /metrics. A screenshot is kept in the output
// directory ($E2E_OUT, default e2e/out) for a person to look at.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kms-exporter/kms_exporter/internal/testbin"
)

// browser returns the headless Chromium, or fails naming what to install.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium-headless-shell", "chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium-headless-shell missing: install Debian's chromium-headless-shell package (.ci/run does)")
	return ""
}

// outputDir is where the test leaves what a person may want to see.
func outputDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("E2E_OUT")
	if dir == "" {
		dir = "out"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// runBrowser runs headless Chromium on url with the flags it needs as root
// in a container (no sandbox, no GPU, nothing fetched in the background)
// and a profile of its own, plus args; it returns stdout.
func runBrowser(ctx context.Context, t *testing.T, bin, url string, args ...string) []byte {
	t.Helper()
	flags := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir(),
	}
	cmd := exec.CommandContext(ctx, bin, append(append(flags, args...), url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// demoFigures reads, per project, the CMK quota use and the keys pending
// deletion from a /metrics exposition.
type demoFigures struct {
	used, limit, pending map[string]float64
}

func readFigures(t *testing.T, metrics []byte) demoFigures {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(metrics))
	if err != nil {
		t.Fatal(err)
	}
	f := demoFigures{used: map[string]float64{}, limit: map[string]float64{}, pending: map[string]float64{}}
	pick := func(name, label, value string, into map[string]float64) {
		for _, m := range mfs[name].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels[label] == value {
				into[labels["project_id"]] = m.GetGauge().GetValue()
			}
		}
	}
	pick("kms_quota_used", "resource", "CMK", f.used)
	pick("kms_quota_limit", "resource", "CMK", f.limit)
	pick("kms_keys", "state", "pending_deletion", f.pending)
	return f
}

var (
	rowRE     = regexp.MustCompile(`(?s)<tr class="kms-target"([^>]*)>(.*?)</tr>`)
	attrRE    = regexp.MustCompile(`data-([a-z-]+)="([^"]*)"`)
	projectRE = regexp.MustCompile(`<td class="kms-id" title="([0-9a-f]+)">`)
)

func TestLandingPageInBrowser(t *testing.T) {
	chromium := browser(t)
	out := outputDir(t)
	ctx := testbin.Context(t)

	// It listens once its config is loaded: ready.
	exporter := testbin.Start(t, "kms_exporter", testbin.Binary(t), "--demo", "--web.listen-address=127.0.0.1:0")
	base := "http://" + exporter.ListenAddress(t)
	// The page shows the last results: scrape first.
	metrics, err := get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	figs := readFigures(t, metrics)
	// The demo's targets: its three region projects, configured, and the
	// sub-projects discovery finds.
	sd, err := get(base + "/targets")
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(sd, &groups); err != nil {
		t.Fatal(err)
	}
	wantRows := map[string]bool{} // target name -> discovered
	for _, g := range groups {
		for _, name := range g.Targets {
			wantRows[name] = g.Labels["__meta_kms_discovered"] == "true"
		}
	}
	for _, name := range []string{"demo-cn-north-4", "demo-ap-southeast-1", "demo-eu-west-101"} {
		if discovered, ok := wantRows[name]; !ok || discovered {
			t.Fatalf("/targets lacks the configured demo target %s: %s", name, sd)
		}
	}
	if len(figs.limit) != len(wantRows) {
		t.Fatalf("/metrics has the CMK quota of %d projects, /targets lists %d targets", len(figs.limit), len(wantRows))
	}

	dom := string(runBrowser(ctx, t, chromium, base+"/", "--dump-dom"))
	if err := os.WriteFile(filepath.Join(out, "landing-page.html"), []byte(dom), 0o644); err != nil {
		t.Fatal(err)
	}
	rows := rowRE.FindAllStringSubmatch(dom, -1)
	if len(rows) != len(wantRows) {
		t.Fatalf("the rendered page shows %d target rows, want %d, one per target (DOM in %s)", len(rows), len(wantRows), filepath.Join(out, "landing-page.html"))
	}
	critical := 0
	for _, row := range rows {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(row[1], -1) {
			attrs[a[1]] = a[2]
		}
		m := projectRE.FindStringSubmatch(row[2])
		if m == nil {
			t.Errorf("row %s shows no project", attrs["target"])
			continue
		}
		project := m[1]
		discovered, ok := wantRows[attrs["target"]]
		if !ok {
			t.Errorf("row %q is not a target of /targets", attrs["target"])
		}
		delete(wantRows, attrs["target"])
		if tagged := strings.Contains(row[2], `<span class="kms-tag">discovered</span>`); tagged != discovered {
			t.Errorf("row %s: tagged discovered %v, /targets says %v", attrs["target"], tagged, discovered)
		}
		if attrs["up"] != "1" {
			t.Errorf("row %s: kms_up %q, want 1", attrs["target"], attrs["up"])
		}
		if got, want := attrs["pending"], strconv.FormatFloat(figs.pending[project], 'f', -1, 64); got != want {
			t.Errorf("row %s: %s keys pending deletion, /metrics says %s", attrs["target"], got, want)
		}
		above90 := figs.used[project] >= 0.9*figs.limit[project]
		marked := attrs["quota-level"] == "critical" && strings.Contains(row[2], `<span class="kms-flag kms-critical">≥ 90%</span>`)
		if above90 != marked {
			t.Errorf("row %s: CMK quota %v of %v, marked above 90%%: %v", attrs["target"], figs.used[project], figs.limit[project], marked)
		}
		if marked {
			critical++
		}
	}
	if critical != 1 {
		t.Errorf("%d rows marked above 90%% of the CMK quota; the demo has one such project", critical)
	}

	// The screenshot, for a person: a real PNG of the window's size that
	// is not blank.
	shot := filepath.Join(out, "landing-page.png")
	runBrowser(ctx, t, chromium, base+"/", "--screenshot="+shot, "--window-size=1440,960")
	checkScreenshot(t, shot, 1440, 960)
	t.Logf("screenshot: %s", shot)
}

func checkScreenshot(t *testing.T, path string, w, h int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s: %v", path, err)
	}
	if b := img.Bounds(); b != image.Rect(0, 0, w, h) {
		t.Errorf("screenshot is %v, want %dx%d", b, w, h)
	}
	colors := map[uint32]bool{}
	for y := 0; y < h; y += 4 {
		for x := 0; x < w; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if len(colors) < 20 {
		t.Errorf("screenshot has %d colours: blank or broken", len(colors))
	}
}
