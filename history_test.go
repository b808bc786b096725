package main

import (
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestHistoryKeepsTheLastLimit(t *testing.T) {
	h := newHistory(3)
	for i := range 5 {
		target := "a"
		if i%2 == 1 {
			target = "b"
		}
		if id := h.add(&scrapeRecord{target: target, start: t0.Add(time.Duration(i) * time.Second)}); id != uint64(i+1) {
			t.Fatalf("add %d: id %d", i, id)
		}
	}
	var ids []uint64
	for _, r := range h.recent() {
		ids = append(ids, r.id)
	}
	if len(ids) != 3 || ids[0] != 5 || ids[1] != 4 || ids[2] != 3 {
		t.Errorf("recent = %v, want [5 4 3]", ids)
	}
	if h.get(2) != nil {
		t.Error("scrape 2 still kept with limit 3")
	}
	if r := h.get(4); r == nil || r.target != "b" {
		t.Errorf("get(4) = %+v", r)
	}
	if r := h.lastOf("a"); r == nil || r.id != 5 {
		t.Errorf("lastOf(a) = %+v, want scrape 5", r)
	}
	if r := h.lastOf("b"); r == nil || r.id != 4 {
		t.Errorf("lastOf(b) = %+v, want scrape 4", r)
	}
	// A record that started before the last one of its target (a slow scrape
	// finishing late) is kept in the list but is not the target's last.
	h.add(&scrapeRecord{target: "a", start: t0})
	if r := h.lastOf("a"); r.id != 5 {
		t.Errorf("lastOf(a) after a late record = %d, want 5", r.id)
	}
	h.retain(func(target string) bool { return target == "b" })
	if h.lastOf("a") != nil || h.lastOf("b") == nil {
		t.Error("retain kept a or dropped b")
	}
}

func TestHistoryLimitZeroKeepsOnlyTheLastOfEachTarget(t *testing.T) {
	h := newHistory(0)
	h.add(&scrapeRecord{target: "a", start: t0})
	id := h.add(&scrapeRecord{target: "a", start: t0.Add(time.Second)})
	if len(h.recent()) != 0 {
		t.Errorf("recent = %d records, want none", len(h.recent()))
	}
	if r := h.get(id); r == nil || h.lastOf("a") != r {
		t.Error("the last record of a target is not reachable by its ID")
	}
	if h.get(1) != nil {
		t.Error("an older record is still reachable")
	}
}

func gauge(name string, v float64, labels ...string) prometheus.Metric {
	var names, values []string
	for i := 0; i+1 < len(labels); i += 2 {
		names = append(names, labels[i])
		values = append(values, labels[i+1])
	}
	return prometheus.MustNewConstMetric(prometheus.NewDesc(name, "help", names, nil), prometheus.GaugeValue, v, values...)
}

func TestSummarize(t *testing.T) {
	soon, later := t0.Add(36*time.Hour), t0.Add(200*time.Hour)
	fams, err := gatherMetrics([]prometheus.Metric{
		gauge("kms_up", 1),
		gauge("kms_quota_used", 46, "resource", "CMK"),
		gauge("kms_quota_limit", 50, "resource", "CMK"),
		gauge("kms_quota_used", 99, "resource", "grant_per_CMK"),
		gauge("kms_quota_limit", 100, "resource", "grant_per_CMK"),
		gauge("kms_keys", 2, "state", "pending_deletion"),
		gauge("kms_keys", 40, "state", "enabled"),
		gauge("kms_key_scheduled_deletion_timestamp_seconds", float64(later.Unix()), "key_id", "k1"),
		gauge("kms_key_scheduled_deletion_timestamp_seconds", float64(soon.UnixMilli())/1000, "key_id", "k2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := summarize(fams)
	if s.up != 1 || s.cmkUsed != 46 || s.cmkMax != 50 || s.pendingDeletion != 2 || !s.nearestDeletion.Equal(soon) {
		t.Errorf("summary %+v", s)
	}
	// Nothing reported: every figure unknown, not zero.
	s = summarize(nil)
	if !math.IsNaN(s.up) || !math.IsNaN(s.cmkUsed) || !math.IsNaN(s.cmkMax) || !math.IsNaN(s.pendingDeletion) || !s.nearestDeletion.IsZero() {
		t.Errorf("empty summary %+v", s)
	}
}
