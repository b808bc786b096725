package kmsfake

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// The resource_detail members of the documentation's example, and the
// ones the official SDK's model adds to them.
var (
	exampleDetail = []string{"creation_date", "default_key_flag", "domain_id", "key_alias", "key_description",
		"key_id", "key_state", "key_type", "scheduled_deletion_date"}
	sdkDetail = []string{"expiration_time", "key_rotation_enabled", "key_spec", "key_usage", "keystore_id",
		"origin", "realm", "sys_enterprise_project_id"}
	liveExtras = []string{"key_label", "partition_type"}
)

func detailsOf(t *testing.T, a answer) []map[string]json.RawMessage {
	t.Helper()
	var pg struct {
		Resources []struct {
			Detail map[string]json.RawMessage `json:"resource_detail"`
		} `json:"resources"`
	}
	if a.status != 200 {
		t.Fatalf("filter: %d %s", a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &pg); err != nil {
		t.Fatal(err)
	}
	var out []map[string]json.RawMessage
	for _, r := range pg.Resources {
		out = append(out, r.Detail)
	}
	return out
}

func str(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s is not a string: %v", raw, err)
	}
	return s
}

func TestDetailShapes(t *testing.T) {
	srv, sc := fixture(t, 200)
	p := sc.Projects[0]
	body := `{"action":"filter","limit":"1000"}`

	full := detailsOf(t, filter(t, srv, sc, p, body))
	want := slices.Sorted(slices.Values(slices.Concat(exampleDetail, sdkDetail, liveExtras)))
	if len(want) != 9+8+2 {
		t.Fatalf("test lists %d members", len(want))
	}
	specs, origins, rotations, projects := map[string]int{}, map[string]int{}, map[string]int{}, map[string]int{}
	expiring := 0
	for i, d := range full {
		if got := slices.Sorted(maps.Keys(d)); !slices.Equal(got, want) {
			t.Fatalf("key %d: members %v, want %v", i, got, want)
		}
		k := p.Keys[i]
		if str(t, d["key_spec"]) != k.KeySpec || str(t, d["key_usage"]) != k.KeyUsage || str(t, d["origin"]) != k.Origin ||
			str(t, d["key_rotation_enabled"]) != k.RotationEnabled || str(t, d["sys_enterprise_project_id"]) != k.EnterpriseProjectID ||
			str(t, d["realm"]) != p.Region {
			t.Fatalf("key %d: %v, want %+v", i, d, k)
		}
		if k.Expires.IsZero() {
			if string(d["expiration_time"]) != `""` {
				t.Fatalf("key %d: expiration_time %s, want \"\"", i, d["expiration_time"])
			}
		} else {
			if num(t, d["expiration_time"]) != k.Expires.UnixMilli() || k.Origin != "external" || !k.Expires.After(testNow) {
				t.Fatalf("key %d: expiration_time %s of %+v", i, d["expiration_time"], k)
			}
			expiring++
		}
		specs[k.KeySpec]++
		origins[k.Origin]++
		rotations[k.RotationEnabled]++
		projects[k.EnterpriseProjectID]++
	}
	// A realistic account: several specs and usages, imported material,
	// rotation on and off, more than one enterprise project.
	for _, s := range []string{"AES_256", "SM4", "HMAC_256"} {
		if specs[s] == 0 {
			t.Errorf("no %s key: %v", s, specs)
		}
	}
	if len(specs) < 6 || origins["external"] < 3 || expiring < 2 || rotations["true"] < 10 || rotations["false"] < 10 || len(projects) != 3 {
		t.Errorf("specs %v, origins %v, %d expiring, rotation %v, enterprise projects %v", specs, origins, expiring, rotations, projects)
	}

	srv.SetDetail(DetailExample)
	for i, d := range detailsOf(t, filter(t, srv, sc, p, body)) {
		if got := slices.Sorted(maps.Keys(d)); !slices.Equal(got, exampleDetail) {
			t.Fatalf("example shape, key %d: members %v, want %v", i, got, exampleDetail)
		}
	}
}

// A scenario key that leaves the attributes empty is served as the API
// describes a key created with defaults.
func TestDetailDefaults(t *testing.T) {
	sc := Scenario{AccessKeys: []AccessKey{ExampleAccessKey}, Projects: []Project{{ID: "p", Region: "cn-north-4", Keys: []kmsapi.Key{
		{ID: "sym", KeyType: 1, State: kmsapi.StateEnabled},
		{ID: "asym", KeyType: 2, State: kmsapi.StateEnabled},
		{ID: "import", KeyType: 1, State: kmsapi.StatePendingImport},
		{ID: "mac", KeyType: 1, KeySpec: "HMAC_256", State: kmsapi.StateEnabled},
	}}}}
	srv := Start(sc)
	srv.SetClock(func() time.Time { return testNow })
	t.Cleanup(srv.Close)
	var got []string
	for _, d := range detailsOf(t, filter(t, srv, sc, sc.Projects[0], `{"action":"filter","limit":"10"}`)) {
		got = append(got, strings.Join([]string{str(t, d["key_spec"]), str(t, d["key_usage"]), str(t, d["origin"]),
			str(t, d["key_rotation_enabled"]), str(t, d["sys_enterprise_project_id"])}, " "))
	}
	want := []string{
		"AES_256 ENCRYPT_DECRYPT kms false 0",
		"RSA_2048 ENCRYPT_DECRYPT kms false 0",
		"AES_256 ENCRYPT_DECRYPT external false 0",
		"HMAC_256 GENERATE_VERIFY_MAC kms false 0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
