//go:build e2e

package e2e

import (
	"crypto/md5"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kms-exporter/kms_exporter/internal/testbin"
)

// shardConfig is the scrape config of one of shards Prometheus servers, as
// the README shows it: the targets from the exporter's /targets, kept when
// their hash falls in this server's shard, each scraped through /probe.
func shardConfig(exporter string, shard, shards int) string {
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: kms
    metrics_path: /probe
    http_sd_configs:
      - url: http://%[1]s/targets
        refresh_interval: 5s
    relabel_configs:
      - source_labels: [__address__]
        modulus: %[3]d
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        regex: "%[2]d"
        action: keep
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - source_labels: [__meta_kms_credentials]
        target_label: credentials
      - target_label: __address__
        replacement: %[1]s
`, exporter, shard, shards)
}

// shardOf is Prometheus' hashmod: the last 8 bytes of the MD5 of the
// value, big-endian, modulo shards.
func shardOf(value string, shards int) int {
	sum := md5.Sum([]byte(value))
	return int(binary.BigEndian.Uint64(sum[8:]) % uint64(shards))
}

// activeInstances lists the instance label of the targets a Prometheus
// server scrapes, and fails while one is not up yet.
func activeInstances(prom string) ([]string, error) {
	body, err := get(prom + "/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	var r struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var out []string
	for _, tg := range r.Data.ActiveTargets {
		if tg.Health != "up" {
			return nil, fmt.Errorf("target %s: health %q %s", tg.Labels["instance"], tg.Health, tg.LastError)
		}
		out = append(out, tg.Labels["instance"])
	}
	slices.Sort(out)
	return out, nil
}

// Two Prometheus servers split the exporter's /targets with hashmod: every
// target is scraped by exactly one of them, and both hold targets.
func TestShardedScrape(t *testing.T) {
	tl := needTools(t)
	bin := testbin.Binary(t)
	ctx := testbin.Context(t)
	dir := t.TempDir()

	// It listens once its config is loaded, discovered targets included.
	exporter := testbin.Start(t, "kms_exporter", bin, "--demo", "--kms.requests-per-second="+demoRPS, "--web.listen-address=127.0.0.1:0")
	expAddr := exporter.ListenAddress(t)

	body, err := get("http://" + expAddr + "/targets")
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(body, &groups); err != nil {
		t.Fatalf("/targets: %v\n%s", err, body)
	}
	const shards = 2
	want := make([][]string, shards)
	discovered := 0
	for _, g := range groups {
		for _, name := range g.Targets {
			s := shardOf(name, shards)
			want[s] = append(want[s], name)
		}
		if g.Labels["__meta_kms_discovered"] == "true" {
			discovered++
		}
	}
	// The demo's six target names fall 2 and 4: both shards hold targets.
	for s := range want {
		slices.Sort(want[s])
		if len(want[s]) == 0 {
			t.Fatalf("shard %d of %d holds no target of %s", s, shards, body)
		}
	}
	if discovered == 0 {
		t.Fatalf("no discovered target in %s", body)
	}

	proms := make([]string, shards)
	for s := range shards {
		cfg := filepath.Join(dir, fmt.Sprintf("prometheus-%d.yml", s))
		writeFile(t, cfg, shardConfig(expAddr, s, shards))
		runTool(ctx, t, false, nil, tl.promtool, "check", "config", cfg)
		addr := freeAddr(t)
		p := testbin.Start(t, fmt.Sprintf("prometheus-%d", s), tl.prometheus,
			"--config.file="+cfg,
			"--storage.tsdb.path="+filepath.Join(dir, fmt.Sprintf("prom-data-%d", s)),
			"--web.listen-address="+addr,
		)
		proms[s] = "http://" + addr
		waitReady(ctx, t, p, proms[s]+"/-/ready")
	}

	for s, prom := range proms {
		poll(ctx, t, fmt.Sprintf("shard %d scrapes %v", s, want[s]), nil, func() error {
			got, err := activeInstances(prom)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want[s]) {
				return fmt.Errorf("scrapes %v", got)
			}
			// Each target's own scrape: kms_up of its one project.
			res, err := query(prom, `count by (instance) (kms_up == 1)`)
			if err != nil {
				return err
			}
			var up []string
			for _, r := range res {
				if r.float() != 1 {
					return fmt.Errorf("instance %s has %v projects up, want 1", r.Metric["instance"], r.float())
				}
				up = append(up, r.Metric["instance"])
			}
			slices.Sort(up)
			if !slices.Equal(up, want[s]) {
				return fmt.Errorf("kms_up == 1 for %v", up)
			}
			return nil
		})
	}
	// Every target of /targets is scraped by exactly one server.
	seen := map[string]int{}
	for _, prom := range proms {
		got, err := activeInstances(prom)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range got {
			seen[name]++
		}
	}
	for _, g := range groups {
		if seen[g.Targets[0]] != 1 {
			t.Errorf("target %s scraped by %d servers, want 1", g.Targets[0], seen[g.Targets[0]])
		}
	}
	if len(seen) != len(groups) {
		t.Errorf("servers scrape %v, /targets lists %d targets", seen, len(groups))
	}
	t.Logf("shards: %s", strings.Join([]string{fmt.Sprint(want[0]), fmt.Sprint(want[1])}, " | "))
}
