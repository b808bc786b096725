package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/testbin"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// rssKiB reads VmRSS of a process from /proc.
func rssKiB(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// configYAML is a config of one target per project of sc, spread
// round-robin over credentials credentials, all pointed at url.
func configYAML(sc kmsfake.Scenario, credentials int, url string) string {
	var b strings.Builder
	b.WriteString("credentials:\n")
	for i := range credentials {
		ak := AccessKey(i)
		fmt.Fprintf(&b, "  bench%d:\n    access_key: %s\n    secret_key: %s\n    iam_endpoint: %s\n", i, ak.AK, ak.SK, url)
	}
	b.WriteString("targets:\n")
	for i, p := range sc.Projects {
		fmt.Fprintf(&b, "  - name: t%02d-%s\n    region: %s\n    project_id: %s\n    credentials: bench%d\n    kms_endpoint: %s\n",
			i, p.Region, p.Region, p.ID, i%credentials, url)
	}
	return b.String()
}

func get(url string) (int, []byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func TestMain(m *testing.M) { testbin.Main(m) }

// BenchmarkIdleRSS builds kms_exporter as make build does (-ldflags "-s
// -w"), starts it with 20 targets of 1,000 keys over 4 credentials against
// the fake, and reads its VmRSS: once ready (rss-start-MiB), and 3 s after
// one full scrape of /metrics (rss-idle-MiB, the figure for the goal). b.N
// is ignored: run it with -benchtime 1x.
func BenchmarkIdleRSS(b *testing.B) {
	const targets, keys, credentials = 20, 1000, 4
	dir := b.TempDir()
	bin := testbin.Binary(b)
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}

	sc := Scenario(targets, keys, credentials)
	srv := kmsfake.Start(sc)
	defer srv.Close()
	cfg := filepath.Join(dir, "kms.yml")
	if err := os.WriteFile(cfg, []byte(configYAML(sc, credentials, srv.URL())), 0o600); err != nil {
		b.Fatal(err)
	}
	p := testbin.Start(b, "kms_exporter", bin, "--config.file="+cfg, "--web.listen-address=127.0.0.1:0")
	base := "http://" + p.ListenAddress(b)
	// Measured a second after it is ready, as every run of this benchmark was.
	time.Sleep(time.Second)
	pid := p.Cmd.Process.Pid
	start, err := rssKiB(pid)
	if err != nil {
		b.Fatal(err)
	}

	code, body, err := get(base + "/metrics")
	if err != nil || code != http.StatusOK {
		b.Fatalf("scrape: %v (status %d)", err, code)
	}
	up := 0
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "kms_up{") && strings.HasSuffix(l, " 1") {
			up++
		}
	}
	if up != targets {
		b.Fatalf("scrape: %d of %d targets up", up, targets)
	}
	afterScrape, err := rssKiB(pid)
	if err != nil {
		b.Fatal(err)
	}
	// An idle exporter does not collect garbage until the runtime's forced
	// GC (2 minutes); 30 s of polling showed RSS flat after the first seconds.
	time.Sleep(3 * time.Second)
	idle, err := rssKiB(pid)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(start)/1024, "rss-start-MiB")
	b.ReportMetric(float64(afterScrape)/1024, "rss-scrape-MiB")
	b.ReportMetric(float64(idle)/1024, "rss-idle-MiB")
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	b.Logf("%d targets x %d keys over %d credentials; VmRSS ready %d KiB, right after one scrape %d KiB, 3s later %d KiB; binary %d bytes",
		targets, keys, credentials, start, afterScrape, idle, fi.Size())
}
