package kmsfake

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

func TestGenerate(t *testing.T) {
	o := GenerateOptions{Seed: 42, Projects: 4, KeysPerProject: 200, Now: testNow}
	a, b := Generate(o), Generate(o)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("Generate is not deterministic for a seed")
	}
	o.Seed = 43
	if reflect.DeepEqual(a, Generate(o)) {
		t.Fatal("different seeds gave the same scenario")
	}
	if len(a.Projects) != 4 || len(a.AccessKeys) != 1 || a.AccessKeys[0] != ExampleAccessKey || a.Agency == nil || len(a.Users) != 1 {
		t.Fatalf("scenario shape: %d projects, %v", len(a.Projects), a.AccessKeys)
	}
	ids := map[string]bool{}
	for i, p := range a.Projects {
		if p.Region != DefaultRegions[i] || len(p.ID) != 32 || ids[p.ID] {
			t.Fatalf("project %d: %s %s", i, p.ID, p.Region)
		}
		ids[p.ID] = true
		if len(p.Keys) != 200 {
			t.Fatalf("project %d: %d keys", i, len(p.Keys))
		}
		states := map[kmsapi.KeyState]int{}
		var custom int64
		tagKeys := map[string]bool{}
		for _, k := range p.Keys {
			if ids[k.ID] {
				t.Fatalf("duplicate key ID %s", k.ID)
			}
			ids[k.ID] = true
			states[k.State]++
			if !k.Default {
				custom++
			} else if !strings.HasSuffix(k.Alias, "/default") {
				t.Fatalf("default key alias %q", k.Alias)
			}
			if (k.State == kmsapi.StatePendingDeletion) != !k.ScheduledDeletion.IsZero() {
				t.Fatalf("key %s: state %v, deletion %v", k.ID, k.State, k.ScheduledDeletion)
			}
			if k.State == kmsapi.StatePendingDeletion && !k.ScheduledDeletion.After(testNow) {
				t.Fatalf("deletion %v is not after now", k.ScheduledDeletion)
			}
			if k.Created.IsZero() || k.Created.After(testNow) {
				t.Fatalf("created %v", k.Created)
			}
			for _, tg := range k.Tags {
				tagKeys[tg.Key] = true
			}
		}
		for s := kmsapi.StatePendingActivation; s <= kmsapi.StatePendingImport; s++ {
			if states[s] == 0 {
				t.Fatalf("project %d has no key in state %v: %v", i, s, states)
			}
		}
		if states[kmsapi.StateEnabled] < 150 {
			t.Fatalf("project %d: only %d of 200 keys enabled", i, states[kmsapi.StateEnabled])
		}
		if !tagKeys["env"] || !tagKeys["team"] || len(tagKeys) < 4 {
			t.Fatalf("project %d tag keys %v: want env, team and a tail", i, tagKeys)
		}
		if p.Instances != custom || p.Quotas[0].Resource != "CMK" || p.Quotas[0].Used != custom || p.Quotas[0].Limit < int64(len(p.Keys)) {
			t.Fatalf("project %d: instances %d, quotas %+v, %d customer keys", i, p.Instances, p.Quotas, custom)
		}
	}

	big := Generate(GenerateOptions{Seed: 1, KeysPerProject: 50000})
	if len(big.Projects) != 1 || len(big.Projects[0].Keys) != 50000 {
		t.Fatalf("large scenario: %d projects", len(big.Projects))
	}
	if s := Generate(GenerateOptions{AccessKey: AccessKey{AK: "A", SK: "S"}}); s.AccessKeys[0].AK != "A" || len(s.Projects[0].Keys) != 0 {
		t.Fatalf("small scenario: %+v", s.AccessKeys)
	}
}

func TestDemo(t *testing.T) {
	now := time.Date(2026, 3, 10, 8, 30, 0, 0, time.UTC)
	d := Demo(now)
	if !reflect.DeepEqual(d, Demo(now)) {
		t.Fatal("Demo is not deterministic")
	}
	later := Demo(now.Add(48 * time.Hour))
	if later.Projects[0].Keys[5].ID != d.Projects[0].Keys[5].ID {
		t.Fatal("Demo content changes with now")
	}
	if len(d.Projects) != 6 || len(d.AccessKeys) != 1 || d.AccessKeys[0] != DemoAccessKey || len(d.CrossRegions) < 2 {
		t.Fatalf("demo shape: %d projects", len(d.Projects))
	}
	// Three region projects, then sub-projects of them, and MOS.
	for i, p := range d.Projects {
		if sub := p.Name != ""; sub != (i >= 3) || (sub && !strings.HasPrefix(p.Name, p.Region+"_")) {
			t.Fatalf("project %d: name %q, region %q", i, p.Name, p.Region)
		}
	}
	if len(d.OtherProjects) != 1 || d.OtherProjects[0].Name != "MOS" {
		t.Fatalf("other projects %+v", d.OtherProjects)
	}
	regions := map[string]bool{}
	over90, soon, later7 := 0, 0, 0
	states := map[kmsapi.KeyState]int{}
	tags := map[string]map[string]bool{}
	defaults := 0
	for _, p := range d.Projects {
		regions[p.Region] = true
		var custom int64
		for _, k := range p.Keys {
			states[k.State]++
			if k.Default {
				defaults++
				if !strings.HasSuffix(k.Alias, "/default") {
					t.Fatalf("default key %q", k.Alias)
				}
			} else {
				custom++
			}
			if !k.ScheduledDeletion.IsZero() {
				if k.State != kmsapi.StatePendingDeletion {
					t.Fatalf("key %s has a deletion date in state %v", k.Alias, k.State)
				}
				switch left := k.ScheduledDeletion.Sub(now); {
				case left > 0 && left <= 7*24*time.Hour:
					soon++
				case left > 7*24*time.Hour:
					later7++
				default:
					t.Fatalf("deletion date %v is in the past", k.ScheduledDeletion)
				}
			}
			for _, tg := range k.Tags {
				if tags[tg.Key] == nil {
					tags[tg.Key] = map[string]bool{}
				}
				tags[tg.Key][tg.Value] = true
			}
		}
		if p.Instances != custom {
			t.Fatalf("%s: instances %d, %d customer keys", p.Region, p.Instances, custom)
		}
		kinds := map[string]bool{}
		for _, q := range p.Quotas {
			kinds[q.Resource] = true
			if q.Resource == "CMK" && q.Used*100 > q.Limit*90 {
				over90++
			}
		}
		if !kinds["CMK"] || !kinds["grant_per_CMK"] {
			t.Fatalf("%s quotas %+v", p.Region, p.Quotas)
		}
	}
	if len(regions) != 3 {
		t.Fatalf("regions %v", regions)
	}
	if over90 != 1 {
		t.Fatalf("%d projects above 90%% of the CMK quota, want 1", over90)
	}
	if soon < 2 || later7 < 1 {
		t.Fatalf("deletions within 7 days: %d, later: %d", soon, later7)
	}
	for s := kmsapi.StatePendingActivation; s <= kmsapi.StatePendingImport; s++ {
		if states[s] == 0 {
			t.Fatalf("no demo key in state %v", s)
		}
	}
	if defaults < 2 {
		t.Fatalf("%d default keys", defaults)
	}
	if len(tags["env"]) != 3 || len(tags["team"]) < 3 || len(tags) < 4 {
		t.Fatalf("demo tags %v", tags)
	}

	// The demo credential works against a fake serving it.
	srv := Start(d)
	defer srv.Close()
	a := call(t, srv, http.MethodGet, quotasPath(d.Projects[0]), nil, signWith(DemoAccessKey, time.Now()))
	if a.status != 200 {
		t.Fatalf("demo credential: %d %s", a.status, a.body)
	}
}
