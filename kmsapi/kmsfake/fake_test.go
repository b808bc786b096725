package kmsfake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/sign"
	"github.com/kms-exporter/kms_exporter/kmsapi"
)

var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// fixture starts a fake on a small generated scenario with a fixed clock.
func fixture(t *testing.T, keys int) (*Server, Scenario) {
	t.Helper()
	sc := Generate(GenerateOptions{Seed: 1, Projects: 2, KeysPerProject: keys, Now: testNow})
	srv := Start(sc)
	srv.SetClock(func() time.Time { return testNow })
	t.Cleanup(srv.Close)
	return srv, sc
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

// errorCode reads error_code from either error shape.
func (a answer) errorCode(t *testing.T) (code string, flat bool) {
	t.Helper()
	var v struct {
		Code  string `json:"error_code"`
		ReqID string `json:"request_id"`
		Error *struct {
			Code string `json:"error_code"`
			Msg  string `json:"error_msg"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("error body %q is not JSON: %v", a.body, err)
	}
	if v.Error != nil {
		return v.Error.Code, false
	}
	if v.ReqID == "" {
		t.Errorf("flat error %s lacks request_id", a.body)
	}
	return v.Code, true
}

type signer func(req *http.Request, body []byte)

func signWith(ak AccessKey, at time.Time) signer {
	return func(req *http.Request, body []byte) {
		sign.Sign(req, body, ak.AK, ak.SK, ak.SecurityToken, at)
	}
}

func withToken(tok string) signer {
	return func(req *http.Request, _ []byte) { req.Header.Set("X-Auth-Token", tok) }
}

func send(t *testing.T, c *http.Client, ctx context.Context, method, url string, body []byte, auth signer) (answer, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != nil {
		auth(req, body)
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}, err
}

func call(t *testing.T, srv *Server, method, path string, body []byte, auth signer) answer {
	t.Helper()
	a, err := send(t, srv.Client(), context.Background(), method, srv.URL()+path, body, auth)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return a
}

func wantError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d (body %s)", a.status, status, a.body)
	}
	if got, _ := a.errorCode(t); got != code {
		t.Fatalf("error_code %q, want %q (body %s)", got, code, a.body)
	}
}

func quotasPath(p Project) string { return "/v1.0/" + p.ID + "/kms/user-quotas" }
func filterPath(p Project) string { return "/v1.0/" + p.ID + "/kms/resource_instances/action" }

func TestSignature(t *testing.T) {
	srv, sc := fixture(t, 5)
	p := sc.Projects[0]
	ak := sc.AccessKeys[0]

	if a := call(t, srv, "GET", quotasPath(p), nil, signWith(ak, testNow)); a.status != 200 {
		t.Fatalf("signed request: %d %s", a.status, a.body)
	}
	// A date within 15 minutes is fine either way.
	if a := call(t, srv, "GET", quotasPath(p), nil, signWith(ak, testNow.Add(-14*time.Minute))); a.status != 200 {
		t.Fatalf("14 min skew: %d %s", a.status, a.body)
	}

	bad := ak
	bad.SK = "wrong"
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(bad, testNow)), 401, "APIGW.0301")
	unknown := AccessKey{AK: "NOSUCHAK", SK: ak.SK}
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(unknown, testNow)), 401, "APIGW.0301")
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(ak, testNow.Add(-16*time.Minute))), 401, "APIGW.0301")
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(ak, testNow.Add(16*time.Minute))), 401, "APIGW.0301")
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, nil), 401, "APIGW.0301")

	// Body tampered after signing.
	body := []byte(`{"action":"count"}`)
	tampered := func(req *http.Request, _ []byte) {
		sign.Sign(req, []byte(`{"action":"filter"}`), ak.AK, ak.SK, "", testNow)
	}
	wantError(t, call(t, srv, "POST", filterPath(p), body, tampered), 401, "APIGW.0301")
	if a := call(t, srv, "POST", filterPath(p), body, signWith(ak, testNow)); a.status != 200 {
		t.Fatalf("untampered body: %d %s", a.status, a.body)
	}

	// Query string is covered by the signature.
	regions := "/v2/" + p.ID + "/kms/regions"
	moved := func(req *http.Request, body []byte) {
		sign.Sign(req, body, ak.AK, ak.SK, "", testNow)
		req.URL.RawQuery = "limit=2"
	}
	wantError(t, call(t, srv, "GET", regions+"?limit=1", nil, moved), 401, "APIGW.0301")

	// The X-Request-Id header is set on every answer and differs per request.
	a1 := call(t, srv, "GET", quotasPath(p), nil, nil)
	a2 := call(t, srv, "GET", quotasPath(p), nil, signWith(ak, testNow))
	id1, id2 := a1.header.Get("X-Request-Id"), a2.header.Get("X-Request-Id")
	if id1 == "" || id2 == "" || id1 == id2 {
		t.Fatalf("X-Request-Id %q, %q: want two distinct values", id1, id2)
	}
}

func TestTemporaryAccessKey(t *testing.T) {
	srv, sc := fixture(t, 5)
	p := sc.Projects[0]
	agency := *sc.Agency

	if a := call(t, srv, "GET", quotasPath(p), nil, signWith(agency, testNow)); a.status != 200 {
		t.Fatalf("temporary AK with token: %d %s", a.status, a.body)
	}
	noToken := agency
	noToken.SecurityToken = ""
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(noToken, testNow)), 401, "APIGW.0301")
	wrongToken := agency
	wrongToken.SecurityToken = "forged"
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, signWith(wrongToken, testNow)), 401, "APIGW.0301")
	// Token sent but left out of the signature.
	unsigned := func(req *http.Request, body []byte) {
		sign.Sign(req, body, agency.AK, agency.SK, "", testNow)
		req.Header.Set(sign.HeaderSecToken, agency.SecurityToken)
	}
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, unsigned), 401, "APIGW.0301")
}

func login(t *testing.T, srv *Server, u User, scope string) answer {
	t.Helper()
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + u.Name +
		`","password":"` + u.Password + `","domain":{"name":"` + u.Domain + `"}}}},"scope":{"project":` + scope + `}}}`
	return call(t, srv, "POST", "/v3/auth/tokens", []byte(body), nil)
}

func TestIAMToken(t *testing.T) {
	srv, sc := fixture(t, 5)
	p0, p1 := sc.Projects[0], sc.Projects[1]
	u := sc.Users[0]

	a := login(t, srv, u, `{"id":"`+p0.ID+`"}`)
	if a.status != 201 {
		t.Fatalf("login: %d %s", a.status, a.body)
	}
	tok := a.header.Get("X-Subject-Token")
	if tok == "" {
		t.Fatal("no X-Subject-Token")
	}
	var resp struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			Project   struct{ ID, Name string }
		}
	}
	if err := json.Unmarshal(a.body, &resp); err != nil {
		t.Fatal(err)
	}
	exp, err := time.Parse(time.RFC3339Nano, resp.Token.ExpiresAt)
	if err != nil || !exp.Equal(testNow.Add(24*time.Hour)) || !strings.HasSuffix(resp.Token.ExpiresAt, "Z") {
		t.Fatalf("expires_at %q (%v), want 24h after the clock", resp.Token.ExpiresAt, err)
	}
	if resp.Token.Project.ID != p0.ID || resp.Token.Project.Name != p0.Region {
		t.Fatalf("token project %+v, want %s %s", resp.Token.Project, p0.ID, p0.Region)
	}

	if a := call(t, srv, "GET", quotasPath(p0), nil, withToken(tok)); a.status != 200 {
		t.Fatalf("token on its project: %d %s", a.status, a.body)
	}
	wantError(t, call(t, srv, "GET", quotasPath(p1), nil, withToken(tok)), 403, "KMS.0321")
	wantError(t, call(t, srv, "GET", quotasPath(p0), nil, withToken("MIIbogus")), 401, "APIGW.0301")
	if a := call(t, srv, "GET", "/v3/projects?name="+p1.Region, nil, withToken(tok)); a.status != 200 {
		t.Fatalf("token on /v3/projects: %d %s", a.status, a.body)
	}

	// Scope by name (the region).
	a = login(t, srv, u, `{"name":"`+p1.Region+`"}`)
	if a.status != 201 {
		t.Fatalf("login by name: %d %s", a.status, a.body)
	}
	tok1 := a.header.Get("X-Subject-Token")
	if a := call(t, srv, "GET", quotasPath(p1), nil, withToken(tok1)); a.status != 200 {
		t.Fatalf("token scoped by name: %d %s", a.status, a.body)
	}

	bad := u
	bad.Password = "nope"
	if a := login(t, srv, bad, `{"id":"`+p0.ID+`"}`); a.status != 401 || a.header.Get("X-Subject-Token") != "" {
		t.Fatalf("wrong password: %d %v", a.status, a.header)
	}
	if a := login(t, srv, u, `{"id":"nosuchproject"}`); a.status != 401 {
		t.Fatalf("unknown project: %d", a.status)
	}

	// Expiry by the clock, with a short TTL.
	srv.SetTokenTTL(time.Minute)
	short := login(t, srv, u, `{"id":"`+p0.ID+`"}`).header.Get("X-Subject-Token")
	srv.SetClock(func() time.Time { return testNow.Add(2 * time.Minute) })
	wantError(t, call(t, srv, "GET", quotasPath(p0), nil, withToken(short)), 401, "KMS.0303")
	wantError(t, call(t, srv, "GET", "/v3/projects", nil, withToken(short)), 401, "APIGW.0307")
	if a := call(t, srv, "GET", quotasPath(p0), nil, withToken(tok)); a.status != 200 {
		t.Fatalf("24h token after 2 minutes: %d %s", a.status, a.body)
	}

	srv.ExpireTokens()
	wantError(t, call(t, srv, "GET", quotasPath(p0), nil, withToken(tok)), 401, "KMS.0303")
	// Tokens issued after ExpireTokens work.
	fresh := login(t, srv, u, `{"id":"`+p0.ID+`"}`).header.Get("X-Subject-Token")
	if a := call(t, srv, "GET", quotasPath(p0), nil, withToken(fresh)); a.status != 200 {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
}

func TestProjectLookup(t *testing.T) {
	sc := Generate(GenerateOptions{Seed: 2, Projects: 3, KeysPerProject: 1, Regions: []string{"cn-north-4", "ap-southeast-1"}, Now: testNow})
	srv := Start(sc)
	defer srv.Close()
	srv.SetClock(func() time.Time { return testNow })
	ak := sc.AccessKeys[0]

	names := func(region string) []string {
		a := call(t, srv, "GET", "/v3/projects?name="+region, nil, signWith(ak, testNow))
		if a.status != 200 {
			t.Fatalf("projects: %d %s", a.status, a.body)
		}
		var v struct {
			Projects []struct {
				ID, Name, DomainID string `json:"-"`
				RawID              string `json:"id"`
				RawName            string `json:"name"`
				RawDomain          string `json:"domain_id"`
				Enabled            bool   `json:"enabled"`
			} `json:"projects"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range v.Projects {
			if p.RawName != region || p.RawDomain == "" || !p.Enabled {
				t.Fatalf("project %+v for %s", p, region)
			}
			ids = append(ids, p.RawID)
		}
		return ids
	}
	if ids := names("ap-southeast-1"); len(ids) != 1 || ids[0] != sc.Projects[1].ID {
		t.Fatalf("ap-southeast-1: %v, want [%s]", ids, sc.Projects[1].ID)
	}
	if ids := names("cn-north-4"); len(ids) != 2 {
		t.Fatalf("cn-north-4 (cycled twice): %v, want two", ids)
	}
	if ids := names("eu-west-101"); len(ids) != 0 {
		t.Fatalf("eu-west-101: %v, want none", ids)
	}
	wantError(t, call(t, srv, "GET", "/v3/projects?name=x", nil, nil), 401, "APIGW.0301")
}

func TestMetadata(t *testing.T) {
	srv, sc := fixture(t, 1)
	get := func(tok string) answer {
		return call(t, srv, "GET", "/openstack/latest/securitykey", nil, func(req *http.Request, _ []byte) {
			if tok != "" {
				req.Header.Set("X-Metadata-Token", tok)
			}
		})
	}
	a := get("")
	if a.status != 200 {
		t.Fatalf("securitykey: %d %s", a.status, a.body)
	}
	var v struct {
		Credential struct {
			Access, Secret, Securitytoken string
			ExpiresAt                     string `json:"expires_at"`
		}
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatal(err)
	}
	c := v.Credential
	if c.Access != sc.Agency.AK || c.Secret != sc.Agency.SK || c.Securitytoken != sc.Agency.SecurityToken {
		t.Fatalf("credential %+v, want the agency's", c)
	}
	if exp, err := time.Parse(time.RFC3339Nano, c.ExpiresAt); err != nil || !exp.Equal(testNow.Add(time.Hour)) {
		t.Fatalf("expires_at %q: want an hour after the clock", c.ExpiresAt)
	}

	// Once a session token exists, it is required.
	put := call(t, srv, "PUT", "/meta-data/latest/api/token", nil, func(req *http.Request, _ []byte) {
		req.Header.Set("X-Metadata-Token-Ttl-Seconds", "300")
	})
	if put.status != 200 || len(put.body) == 0 {
		t.Fatalf("session token: %d %q", put.status, put.body)
	}
	if a := get(""); a.status != 401 {
		t.Fatalf("without session token: %d", a.status)
	}
	if a := get("wrong"); a.status != 401 {
		t.Fatalf("wrong session token: %d", a.status)
	}
	if a := get(string(put.body)); a.status != 200 {
		t.Fatalf("with session token: %d", a.status)
	}
	if a := call(t, srv, "PUT", "/meta-data/latest/api/token", nil, nil); a.status != 400 {
		t.Fatalf("PUT without TTL: %d", a.status)
	}

	none := Start(Scenario{})
	defer none.Close()
	if a := call(t, none, "GET", "/openstack/latest/securitykey", nil, nil); a.status != 404 {
		t.Fatalf("no agency: %d", a.status)
	}
}

// filter posts a resource_instances body signed with the scenario's AK.
func filter(t *testing.T, srv *Server, sc Scenario, p Project, body string) answer {
	t.Helper()
	return call(t, srv, "POST", filterPath(p), []byte(body), signWith(sc.AccessKeys[0], testNow))
}

type page struct {
	Resources []struct {
		ResourceID     string `json:"resource_id"`
		ResourceName   string `json:"resource_name"`
		ResourceDetail struct {
			KeyID      string          `json:"key_id"`
			KeyAlias   string          `json:"key_alias"`
			KeyState   json.RawMessage `json:"key_state"`
			Flag       json.RawMessage `json:"default_key_flag"`
			Created    json.RawMessage `json:"creation_date"`
			Deletion   json.RawMessage `json:"scheduled_deletion_date"`
			KeyLabel   *string         `json:"key_label"`
			Partition  *string         `json:"partition_type"`
			DomainID   string          `json:"domain_id"`
			KeyType    json.RawMessage `json:"key_type"`
			Descriptio string          `json:"key_description"`
		} `json:"resource_detail"`
		Tags []struct{ Key, Value string } `json:"tags"`
	} `json:"resources"`
	Total json.RawMessage `json:"total_count"`
}

func decodePage(t *testing.T, a answer) (page, int) {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("filter: %d %s", a.status, a.body)
	}
	var pg page
	if err := json.Unmarshal(a.body, &pg); err != nil {
		t.Fatalf("page %.200s: %v", a.body, err)
	}
	return pg, int(num(t, pg.Total))
}

// num decodes a number written either way.
func num(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var n json.Number
	s := strings.Trim(string(raw), `"`)
	n = json.Number(s)
	v, err := n.Int64()
	if err != nil {
		t.Fatalf("number %s: %v", raw, err)
	}
	return v
}

func TestFilterPaging(t *testing.T) {
	srv, sc := fixture(t, 57)
	p := sc.Projects[0]

	// Default limit 10, offset 0; the pages together list every key in order.
	pg, total := decodePage(t, filter(t, srv, sc, p, `{"action":"filter"}`))
	if total != 57 || len(pg.Resources) != 10 || pg.Resources[0].ResourceID != p.Keys[0].ID {
		t.Fatalf("default page: total %d, %d resources", total, len(pg.Resources))
	}
	var ids []string
	for off := 0; off < 57; off += 20 {
		pg, total := decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"20","offset":"`+strconv.Itoa(off)+`"}`))
		if total != 57 {
			t.Fatalf("total %d", total)
		}
		for _, r := range pg.Resources {
			ids = append(ids, r.ResourceID)
		}
	}
	if len(ids) != 57 {
		t.Fatalf("paged %d keys, want 57", len(ids))
	}
	for i, k := range p.Keys {
		if ids[i] != k.ID {
			t.Fatalf("key %d: %s, want %s", i, ids[i], k.ID)
		}
	}
	pg, _ = decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"10","offset":"100"}`))
	if len(pg.Resources) != 0 {
		t.Fatalf("offset past the end: %d resources", len(pg.Resources))
	}
	pg, total = decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"1000"}`))
	if len(pg.Resources) != 57 || total != 57 {
		t.Fatalf("limit 1000: %d", len(pg.Resources))
	}

	// Every field is there, unknown extras included, and it matches the scenario.
	for i, r := range pg.Resources {
		k := p.Keys[i]
		d := r.ResourceDetail
		if d.KeyID != k.ID || d.KeyAlias != k.Alias || r.ResourceName != k.ResourceName || d.DomainID != k.DomainID ||
			d.Descriptio != k.Description || num(t, d.KeyState) != int64(k.State) || num(t, d.KeyType) != int64(k.KeyType) {
			t.Fatalf("key %d: %+v, want %+v", i, r, k)
		}
		if d.KeyLabel == nil || d.Partition == nil {
			t.Fatalf("key %d lacks the unknown fields key_label, partition_type", i)
		}
		if (num(t, d.Flag) == 1) != k.Default {
			t.Fatalf("key %d: default_key_flag %s, want %v", i, d.Flag, k.Default)
		}
		if num(t, d.Created) != k.Created.UnixMilli() || len(strings.Trim(string(d.Created), `"`)) != 13 {
			t.Fatalf("key %d: creation_date %s, want 13-digit ms %d", i, d.Created, k.Created.UnixMilli())
		}
		if k.ScheduledDeletion.IsZero() {
			if string(d.Deletion) != `""` {
				t.Fatalf("key %d: scheduled_deletion_date %s, want \"\"", i, d.Deletion)
			}
		} else if num(t, d.Deletion) != k.ScheduledDeletion.UnixMilli() {
			t.Fatalf("key %d: scheduled_deletion_date %s", i, d.Deletion)
		}
		if len(r.Tags) != len(k.Tags) {
			t.Fatalf("key %d: tags %v, want %v", i, r.Tags, k.Tags)
		}
		for j, tg := range r.Tags {
			if tg.Key != k.Tags[j].Key || tg.Value != k.Tags[j].Value {
				t.Fatalf("key %d: tags %v, want %v", i, r.Tags, k.Tags)
			}
		}
	}

	// count: resources null, total_count.
	a := filter(t, srv, sc, p, `{"action":"count"}`)
	var cnt struct {
		Resources json.RawMessage `json:"resources"`
		Total     json.RawMessage `json:"total_count"`
	}
	if err := json.Unmarshal(a.body, &cnt); err != nil || string(cnt.Resources) != "null" || num(t, cnt.Total) != 57 {
		t.Fatalf("count: %s (%v)", a.body, err)
	}
}

// wantKeys computes the expected selection from the scenario.
func wantKeys(p Project, keep func(kmsapi.Key) bool) []string {
	var ids []string
	for _, k := range p.Keys {
		if keep(k) {
			ids = append(ids, k.ID)
		}
	}
	return ids
}

func hasTag(k kmsapi.Key, key string, values ...string) bool {
	for _, t := range k.Tags {
		if t.Key != key {
			continue
		}
		if len(values) == 0 {
			return true
		}
		for _, v := range values {
			if t.Value == v {
				return true
			}
		}
	}
	return false
}

func TestFilterTagsAndMatches(t *testing.T) {
	srv, sc := fixture(t, 300)
	p := sc.Projects[0]
	cases := []struct {
		name, body string
		keep       func(kmsapi.Key) bool
	}{
		{"one value", `"tags":[{"key":"env","values":["prod"]}]`,
			func(k kmsapi.Key) bool { return hasTag(k, "env", "prod") }},
		{"values OR-ed", `"tags":[{"key":"env","values":["staging","dev"]}]`,
			func(k kmsapi.Key) bool { return hasTag(k, "env", "staging", "dev") }},
		{"tags AND-ed", `"tags":[{"key":"env","values":["prod"]},{"key":"team","values":["payments","data"]}]`,
			func(k kmsapi.Key) bool { return hasTag(k, "env", "prod") && hasTag(k, "team", "payments", "data") }},
		{"no values: any", `"tags":[{"key":"compliance","values":[]}]`,
			func(k kmsapi.Key) bool { return hasTag(k, "compliance") }},
		{"match substring", `"matches":[{"key":"resource_name","value":"orders-"}]`,
			func(k kmsapi.Key) bool { return strings.Contains(k.ResourceName, "orders-") }},
		{"match and tag", `"matches":[{"key":"resource_name","value":"db"}],"tags":[{"key":"env","values":["dev"]}]`,
			func(k kmsapi.Key) bool { return strings.Contains(k.ResourceName, "db") && hasTag(k, "env", "dev") }},
		{"nothing", `"tags":[{"key":"env","values":["nope"]}]`,
			func(k kmsapi.Key) bool { return false }},
	}
	for _, c := range cases {
		want := wantKeys(p, c.keep)
		pg, total := decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"1000",`+c.body+`}`))
		if total != len(want) || len(pg.Resources) != len(want) {
			t.Fatalf("%s: total %d, %d resources, want %d", c.name, total, len(pg.Resources), len(want))
		}
		for i, r := range pg.Resources {
			if r.ResourceID != want[i] {
				t.Fatalf("%s: key %d is %s, want %s", c.name, i, r.ResourceID, want[i])
			}
		}
		a := filter(t, srv, sc, p, `{"action":"count",`+c.body+`}`)
		var cnt struct {
			Total json.RawMessage `json:"total_count"`
		}
		if err := json.Unmarshal(a.body, &cnt); err != nil || num(t, cnt.Total) != int64(len(want)) {
			t.Fatalf("%s: count %s, want %d", c.name, a.body, len(want))
		}
		if c.name != "nothing" && len(want) == 0 {
			t.Fatalf("%s: the scenario has no such key; the test proves nothing", c.name)
		}
	}
	// Paging applies to the filtered list.
	want := wantKeys(p, func(k kmsapi.Key) bool { return hasTag(k, "env", "prod") })
	pg, total := decodePage(t, filter(t, srv, sc, p, `{"action":"filter","limit":"5","offset":"3","tags":[{"key":"env","values":["prod"]}]}`))
	if total != len(want) || len(pg.Resources) != 5 || pg.Resources[0].ResourceID != want[3] {
		t.Fatalf("filtered page: total %d, first %v", total, pg.Resources)
	}
}

func TestErrors(t *testing.T) {
	srv, sc := fixture(t, 5)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	cases := []struct {
		body   string
		status int
		code   string
	}{
		{`{"action":`, 400, "KMS.0202"},
		{`not json`, 400, "KMS.0202"},
		{`{"action":"filter"} trailing`, 400, "KMS.0202"},
		{`{"limit":"10"}`, 400, "KMS.0204"},
		{`{"action":""}`, 400, "KMS.0204"},
		{`{"action":"filter","offset":"-1"}`, 400, "KMS.0417"},
		{`{"action":"filter","offset":"abc"}`, 400, "KMS.0308"},
		{`{"action":"filter","limit":"0"}`, 400, "KMS.0308"},
		{`{"action":"filter","limit":"1001"}`, 400, "KMS.0308"},
		{`{"action":"filter","limit":10}`, 400, "KMS.0308"},
		{`{"action":"count","limit":"10"}`, 400, "KMS.0418"},
		{`{"action":"count","offset":"0"}`, 400, "KMS.0418"},
		{`{"action":"delete"}`, 400, "KMS.0308"},
		{`{"action":"filter","matches":[{"key":"key_id","value":"x"}]}`, 400, "KMS.0308"},
		{`{"action":"filter","tags":[{"key":"","values":["x"]}]}`, 400, "KMS.0308"},
	}
	for _, c := range cases {
		a := call(t, srv, "POST", filterPath(p), []byte(c.body), ak)
		if a.status != c.status {
			t.Fatalf("%s: status %d, want %d", c.body, a.status, c.status)
		}
		if code, flat := a.errorCode(t); code != c.code || flat {
			t.Fatalf("%s: %s (flat %v), want KMS shape %s", c.body, a.body, flat, c.code)
		}
	}

	wantError(t, call(t, srv, "GET", "/v1.0/"+p.ID+"/kms/no-such-api", nil, ak), 400, "KMS.0201")
	a := call(t, srv, "GET", "/v9/nothing", nil, ak)
	if code, flat := a.errorCode(t); a.status != 404 || code != "APIGW.0101" || !flat {
		t.Fatalf("unknown path: %d %s", a.status, a.body)
	}
	wantError(t, call(t, srv, "DELETE", quotasPath(p), nil, ak), 404, "APIGW.0101")
	wantError(t, call(t, srv, "GET", "/v1.0/0000000000000000000000000000dead/kms/user-quotas", nil, ak), 403, "KMS.0321")
	wrongHeader := func(req *http.Request, body []byte) {
		req.Header.Set("X-Project-Id", sc.Projects[1].ID)
		sign.Sign(req, body, sc.AccessKeys[0].AK, sc.AccessKeys[0].SK, "", testNow)
	}
	wantError(t, call(t, srv, "GET", quotasPath(p), nil, wrongHeader), 403, "KMS.0321")
	rightHeader := func(req *http.Request, body []byte) {
		req.Header.Set("X-Project-Id", p.ID)
		sign.Sign(req, body, sc.AccessKeys[0].AK, sc.AccessKeys[0].SK, "", testNow)
	}
	if a := call(t, srv, "GET", quotasPath(p), nil, rightHeader); a.status != 200 {
		t.Fatalf("matching X-Project-Id: %d %s", a.status, a.body)
	}
	// Authentication comes before the project check.
	wantError(t, call(t, srv, "GET", "/v1.0/nosuch/kms/user-quotas", nil, nil), 401, "APIGW.0301")
}

func TestQuotasInstancesRegions(t *testing.T) {
	srv, sc := fixture(t, 30)
	srv.SetEncoding(Numeric)
	p := sc.Projects[1]
	ak := signWith(sc.AccessKeys[0], testNow)

	var q struct {
		Quotas struct {
			Resources []struct {
				Type        string
				Used, Quota int64
			}
		}
	}
	a := call(t, srv, "GET", quotasPath(p), nil, ak)
	if err := json.Unmarshal(a.body, &q); err != nil {
		t.Fatalf("quotas %s: %v", a.body, err)
	}
	if len(q.Quotas.Resources) != len(p.Quotas) {
		t.Fatalf("quotas %s, want %v", a.body, p.Quotas)
	}
	for i, r := range q.Quotas.Resources {
		if r.Type != p.Quotas[i].Resource || r.Used != p.Quotas[i].Used || r.Quota != p.Quotas[i].Limit {
			t.Fatalf("quota %d: %+v, want %+v", i, r, p.Quotas[i])
		}
	}

	var in struct {
		N int64 `json:"instance_num"`
	}
	a = call(t, srv, "GET", "/v1.0/"+p.ID+"/kms/user-instances", nil, ak)
	if err := json.Unmarshal(a.body, &in); err != nil || in.N != p.Instances {
		t.Fatalf("instances %s, want %d", a.body, p.Instances)
	}

	var got []string
	for off := 0; ; off += 2 {
		a := call(t, srv, "GET", "/v2/"+p.ID+"/kms/regions?limit=2&offset="+strconv.Itoa(off), nil, ak)
		var r struct{ Regions []string }
		if err := json.Unmarshal(a.body, &r); err != nil || r.Regions == nil {
			t.Fatalf("regions %s: %v", a.body, err)
		}
		got = append(got, r.Regions...)
		if len(r.Regions) < 2 {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(sc.CrossRegions, ",") {
		t.Fatalf("regions %v, want %v", got, sc.CrossRegions)
	}
	wantError(t, call(t, srv, "GET", "/v2/"+p.ID+"/kms/regions?limit=x", nil, ak), 400, "KMS.0308")
}

func TestEncodings(t *testing.T) {
	srv, sc := fixture(t, 5)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	stringsIn := func() bool {
		a := call(t, srv, "GET", "/v1.0/"+p.ID+"/kms/user-instances", nil, ak)
		var v struct {
			N json.RawMessage `json:"instance_num"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatal(err)
		}
		return v.N[0] == '"'
	}
	// Default: alternate, so two answers give both shapes.
	if a, b := stringsIn(), stringsIn(); a == b {
		t.Fatalf("alternate encoding gave the same shape twice (strings %v)", a)
	}
	srv.SetEncoding(Strings)
	if !stringsIn() || !stringsIn() {
		t.Fatal("Strings encoding gave a number")
	}
	a := filter(t, srv, sc, p, `{"action":"filter"}`)
	for _, want := range []string{`"total_count":"5"`, `"key_state":"`, `"creation_date":"1`} {
		if !bytes.Contains(a.body, []byte(want)) {
			t.Fatalf("Strings page lacks %s: %.300s", want, a.body)
		}
	}
	srv.SetEncoding(Numeric)
	if stringsIn() || stringsIn() {
		t.Fatal("Numeric encoding gave a string")
	}
	a = filter(t, srv, sc, p, `{"action":"filter"}`)
	for _, want := range []string{`"total_count":5`, `"key_state":2`} {
		if !bytes.Contains(a.body, []byte(want)) {
			t.Fatalf("Numeric page lacks %s: %.300s", want, a.body)
		}
	}
}

func TestFaults(t *testing.T) {
	srv, sc := fixture(t, 5)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	get := func() answer { return call(t, srv, "GET", quotasPath(p), nil, ak) }

	for _, c := range []struct {
		f    Fault
		code string
		flat bool
	}{
		{Fault{Status: 500}, "KMS.0101", false},
		{Fault{Status: 502}, "APIGW.0202", true},
		{Fault{Status: 504}, "APIGW.0203", true},
		{Fault{Status: 403}, "KMS.0306", false},
		{Fault{Status: 403, ErrorCode: "APIGW.0302"}, "APIGW.0302", true},
		{Fault{Status: 401}, "APIGW.0301", true},
		{Fault{Status: 404}, "APIGW.0101", true},
		{Fault{Status: 429}, "APIGW.0308", true},
	} {
		srv.SetFault(kmsapi.EndpointQuotas, c.f)
		a := get()
		code, flat := a.errorCode(t)
		if a.status != c.f.Status || code != c.code || flat != c.flat {
			t.Fatalf("fault %+v: %d %s", c.f, a.status, a.body)
		}
	}
	// Faults apply to their endpoint only.
	if a := call(t, srv, "GET", "/v1.0/"+p.ID+"/kms/user-instances", nil, ak); a.status != 200 {
		t.Fatalf("other endpoint under a quotas fault: %d", a.status)
	}
	// "" covers every endpoint; a named fault takes precedence.
	srv.ClearFaults()
	srv.SetFault("", Fault{Status: 500})
	if a := call(t, srv, "GET", "/v1.0/"+p.ID+"/kms/user-instances", nil, ak); a.status != 500 {
		t.Fatalf("global fault: %d", a.status)
	}
	srv.ClearFaults()
	if a := get(); a.status != 200 {
		t.Fatalf("after ClearFaults: %d", a.status)
	}

	// Half the requests throttled, deterministically.
	srv.SetFault(kmsapi.EndpointQuotas, Fault{ThrottleRate: 0.5})
	throttled := 0
	for range 10 {
		a := get()
		if a.status == 429 {
			if code, flat := a.errorCode(t); code != "APIGW.0308" || !flat {
				t.Fatalf("throttle body %s", a.body)
			}
			throttled++
		}
	}
	if throttled != 5 {
		t.Fatalf("ThrottleRate 0.5: %d of 10 throttled", throttled)
	}

	srv.SetFault(kmsapi.EndpointQuotas, Fault{Malformed: true})
	if a := get(); a.status != 200 || json.Valid(a.body) {
		t.Fatalf("malformed: %d %s", a.status, a.body)
	}
	srv.SetFault(kmsapi.EndpointQuotas, Fault{Truncated: true})
	if a := get(); a.status != 200 || json.Valid(a.body) || len(a.body) < 10 || !bytes.HasPrefix(a.body, []byte(`{"quotas"`)) {
		t.Fatalf("truncated: %d %s", a.status, a.body)
	}
	srv.SetFault(kmsapi.EndpointQuotas, Fault{HugeBody: 3 << 20})
	if a := get(); a.status != 200 || len(a.body) != 3<<20 || !json.Valid(a.body) {
		t.Fatalf("huge: %d, %d bytes", a.status, len(a.body))
	}
}

// inBubble runs fn in a testing/synctest bubble with a fake of a small
// scenario that listens nowhere, reached through its in-memory client:
// latency and hangs run on the bubble's clock.
func inBubble(t *testing.T, fn func(t *testing.T, srv *Server, p Project, ak signer)) {
	synctest.Test(t, func(t *testing.T) {
		sc := Generate(GenerateOptions{Seed: 1, Projects: 1, KeysPerProject: 1, Now: time.Now()})
		srv := New(sc)
		t.Cleanup(srv.Close)
		fn(t, srv, sc.Projects[0], signWith(sc.AccessKeys[0], time.Now()))
	})
}

// Latency delays the answer by exactly its length, and gives up with the
// client.
func TestLatency(t *testing.T) {
	inBubble(t, func(t *testing.T, srv *Server, p Project, ak signer) {
		srv.SetFault(kmsapi.EndpointQuotas, Fault{Latency: 20 * time.Millisecond})
		start := time.Now()
		if a, err := send(t, srv.Client(), context.Background(), "GET", srv.URL()+quotasPath(p), nil, ak); err != nil || a.status != 200 || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("latency: %d, %v after %v", a.status, err, time.Since(start))
		}
		srv.SetFault(kmsapi.EndpointQuotas, Fault{Latency: time.Hour})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start = time.Now()
		if _, err := send(t, srv.Client(), ctx, "GET", srv.URL()+quotasPath(p), nil, ak); err == nil || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("latency past the deadline: %v after %v", err, time.Since(start))
		}
	})
}

func TestHang(t *testing.T) {
	inBubble(t, func(t *testing.T, srv *Server, p Project, ak signer) {
		srv.SetFault(kmsapi.EndpointQuotas, Fault{Hang: true})
		// Released when the client gives up.
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := send(t, srv.Client(), ctx, "GET", srv.URL()+quotasPath(p), nil, ak); err == nil || time.Since(start) != 50*time.Millisecond {
			t.Fatalf("hang: %v after %v", err, time.Since(start))
		}

		// Released by Close: Close returns although a request hangs.
		done := make(chan error, 1)
		go func() {
			_, err := send(t, srv.Client(), context.Background(), "GET", srv.URL()+quotasPath(p), nil, ak)
			done <- err
		}()
		synctest.Wait()
		select {
		case err := <-done:
			t.Fatalf("hanging request answered: %v", err)
		default:
		}
		srv.Close()
		if err := <-done; err == nil {
			t.Fatal("hanging request got an answer")
		}
	})
}

func TestRequestCounts(t *testing.T) {
	srv, sc := fixture(t, 1)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	call(t, srv, "GET", quotasPath(p), nil, ak)
	call(t, srv, "GET", quotasPath(p), nil, nil) // rejected, still counted
	srv.SetFault(kmsapi.EndpointRegions, Fault{Status: 500})
	call(t, srv, "GET", "/v2/"+p.ID+"/kms/regions", nil, ak)
	call(t, srv, "POST", "/v3/auth/tokens", []byte(`{}`), nil)
	call(t, srv, "GET", "/openstack/latest/securitykey", nil, nil)
	call(t, srv, "GET", "/nothing", nil, nil)

	for ep, want := range map[string]int{
		kmsapi.EndpointQuotas: 2, kmsapi.EndpointRegions: 1, kmsapi.EndpointIAMToken: 1,
		kmsapi.EndpointECSMetadata: 1, kmsapi.EndpointInstances: 0, "": 6,
	} {
		if got := srv.Requests(ep); got != want {
			t.Errorf("Requests(%q) = %d, want %d", ep, got, want)
		}
	}
	srv.ResetRequests()
	if srv.Requests("") != 0 || srv.Requests(kmsapi.EndpointQuotas) != 0 {
		t.Fatal("ResetRequests left counts")
	}
}

func TestRateLimit(t *testing.T) {
	srv, sc := fixture(t, 1)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	agency := signWith(*sc.Agency, testNow)
	srv.SetRateLimit(3) // the clock is frozen, so no token comes back

	for i := range 3 {
		if a := call(t, srv, "GET", quotasPath(p), nil, ak); a.status != 200 {
			t.Fatalf("request %d within the limit: %d", i, a.status)
		}
	}
	a := call(t, srv, "GET", quotasPath(p), nil, ak)
	if code, flat := a.errorCode(t); a.status != 429 || code != "APIGW.0308" || !flat {
		t.Fatalf("over the limit: %d %s", a.status, a.body)
	}
	// Per AK: another credential still passes.
	if a := call(t, srv, "GET", quotasPath(p), nil, agency); a.status != 200 {
		t.Fatalf("other AK: %d", a.status)
	}
	// A second later the bucket has refilled.
	srv.SetClock(func() time.Time { return testNow.Add(time.Second) })
	if a := call(t, srv, "GET", quotasPath(p), nil, ak); a.status != 200 {
		t.Fatalf("after a second: %d", a.status)
	}
	srv.SetRateLimit(0)
	for range 10 {
		if a := call(t, srv, "GET", quotasPath(p), nil, ak); a.status != 200 {
			t.Fatalf("rate limit off: %d", a.status)
		}
	}
}

func TestTLS(t *testing.T) {
	sc := Generate(GenerateOptions{Seed: 3, KeysPerProject: 1, Now: testNow})
	srv := StartTLS(sc)
	defer srv.Close()
	if !strings.HasPrefix(srv.URL(), "https://127.0.0.1:") {
		t.Fatalf("URL %s", srv.URL())
	}
	if _, err := send(t, &http.Client{}, context.Background(), "GET", srv.URL()+"/v3/projects", nil, nil); err == nil {
		t.Fatal("a default client trusted the self-signed certificate")
	}
	a, err := send(t, srv.Client(), context.Background(), "GET", srv.URL()+"/v3/projects", nil, signWith(sc.AccessKeys[0], time.Now()))
	if err != nil || a.status != 200 {
		t.Fatalf("with Client(): %v %d", err, a.status)
	}
}

func TestConcurrent(t *testing.T) {
	srv, sc := fixture(t, 50)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	errs := make(chan error, 40)
	for i := range 40 {
		go func() {
			switch i % 4 {
			case 0:
				srv.SetEncoding(Encoding(i % 3))
			case 1:
				srv.SetFault(kmsapi.EndpointRegions, Fault{ThrottleRate: 0.3})
			}
			a, err := send(t, srv.Client(), context.Background(), "POST", srv.URL()+filterPath(p), []byte(`{"action":"filter","limit":"50"}`), ak)
			if err == nil && a.status != 200 {
				err = errors.New(string(a.body))
			}
			srv.Requests("")
			errs <- err
		}()
	}
	for range 40 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
