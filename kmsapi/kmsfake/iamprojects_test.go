package kmsfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAuthProjectsListing(t *testing.T) {
	sc := Generate(GenerateOptions{Seed: 1, Projects: 2, KeysPerProject: 1, Now: testNow})
	sc.Projects[1].Name = sc.Projects[1].Region + "_payments"
	sc.OtherProjects = []IAMProject{{ID: "mos0000000000000000000000000000a", Name: "MOS"}}
	srv := Start(sc)
	srv.SetClock(func() time.Time { return testNow })
	t.Cleanup(srv.Close)
	ak := sc.AccessKeys[0]

	type listing struct {
		Projects []struct {
			ID, Name string
			Enabled  bool
		}
		Links struct {
			Self string
			Next *string
		}
	}
	list := func(path string) listing {
		t.Helper()
		a := call(t, srv, "GET", path, nil, signWith(ak, testNow))
		if a.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, a.status, a.body)
		}
		var l listing
		if err := json.Unmarshal(a.body, &l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	all := list("/v3/auth/projects")
	var names []string
	for _, p := range all.Projects {
		names = append(names, p.Name)
	}
	want := sc.Projects[0].Region + "," + sc.Projects[1].Region + "_payments,MOS"
	if strings.Join(names, ",") != want || all.Links.Next != nil || !strings.HasSuffix(all.Links.Self, "/v3/auth/projects") {
		t.Fatalf("listing: %v, links %+v; want %s and no next link", names, all.Links, want)
	}

	// Pages of two: the first links to the rest.
	srv.SetProjectPageSize(2)
	first := list("/v3/auth/projects")
	if len(first.Projects) != 2 || first.Links.Next == nil || !strings.HasPrefix(*first.Links.Next, srv.URL()+"/v3/auth/projects?") {
		t.Fatalf("first page: %+v", first)
	}
	rest := list(strings.TrimPrefix(*first.Links.Next, srv.URL()))
	if len(rest.Projects) != 1 || rest.Projects[0].Name != "MOS" || rest.Links.Next != nil {
		t.Fatalf("second page: %+v", rest)
	}
	if a := call(t, srv, "GET", "/v3/auth/projects?marker=nosuch", nil, signWith(ak, testNow)); a.status != http.StatusBadRequest {
		t.Errorf("unknown marker: %d", a.status)
	}

	// The sub-project is found by its name; MOS has no KMS.
	if a := call(t, srv, "GET", "/v3/projects?name="+sc.Projects[1].Region+"_payments", nil, signWith(ak, testNow)); !strings.Contains(string(a.body), sc.Projects[1].ID) {
		t.Errorf("lookup of the sub-project: %s", a.body)
	}
	wantError(t, call(t, srv, "GET", "/v1.0/"+sc.OtherProjects[0].ID+"/kms/user-quotas", nil, signWith(ak, testNow)), http.StatusForbidden, "KMS.0321")
	wantError(t, call(t, srv, "GET", "/v3/auth/projects", nil, nil), http.StatusUnauthorized, "APIGW.0301")
}

// A token scoped to the domain lists projects but is refused by KMS.
func TestDomainScopedToken(t *testing.T) {
	srv, sc := fixture(t, 1)
	u := ExampleUser
	body := `{"auth":{"identity":{"methods":["password"],"password":{"user":{"name":"` + u.Name + `","password":"` + u.Password + `","domain":{"name":"` + u.Domain + `"}}}},"scope":{"domain":{"name":"` + u.Domain + `"}}}}`
	a := call(t, srv, "POST", "/v3/auth/tokens", []byte(body), nil)
	tok := a.header.Get("X-Subject-Token")
	if a.status != http.StatusCreated || tok == "" || strings.Contains(string(a.body), `"project"`) {
		t.Fatalf("domain token: %d %s", a.status, a.body)
	}
	if a := call(t, srv, "GET", "/v3/auth/projects", nil, withToken(tok)); a.status != http.StatusOK {
		t.Errorf("listing with a domain token: %d %s", a.status, a.body)
	}
	wantError(t, call(t, srv, "GET", quotasPath(sc.Projects[0]), nil, withToken(tok)), http.StatusForbidden, "KMS.0321")
	other := strings.Replace(body, `"scope":{"domain":{"name":"`+u.Domain, `"scope":{"domain":{"name":"someone-else`, 1)
	if a := call(t, srv, "POST", "/v3/auth/tokens", []byte(other), nil); a.status != http.StatusUnauthorized {
		t.Errorf("token for another domain: %d %s", a.status, a.body)
	}
}

func TestHideProjects(t *testing.T) {
	srv, sc := fixture(t, 1)
	list := func() string {
		a := call(t, srv, "GET", "/v3/auth/projects", nil, signWith(sc.AccessKeys[0], testNow))
		return string(a.body)
	}
	srv.HideProjects(sc.Projects[1].ID)
	if l := list(); strings.Contains(l, sc.Projects[1].ID) || !strings.Contains(l, sc.Projects[0].ID) {
		t.Errorf("hidden project listed: %s", l)
	}
	if a := call(t, srv, "GET", quotasPath(sc.Projects[1]), nil, signWith(sc.AccessKeys[0], testNow)); a.status != http.StatusOK {
		t.Errorf("KMS of a hidden project: %d", a.status)
	}
	srv.HideProjects()
	if l := list(); !strings.Contains(l, sc.Projects[1].ID) {
		t.Errorf("project not shown again: %s", l)
	}
}
