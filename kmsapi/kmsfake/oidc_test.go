package kmsfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func exchange(t *testing.T, srv *Server, idp, idToken, scope string) answer {
	t.Helper()
	body := `{"auth":{"id_token":{"id":"` + idToken + `"}` + scope + `}}`
	return call(t, srv, "POST", idTokenPath, []byte(body), func(req *http.Request, _ []byte) {
		if idp != "" {
			req.Header.Set("X-Idp-Id", idp)
		}
	})
}

func TestIDTokenExchange(t *testing.T) {
	srv, sc := fixture(t, 3)
	p := sc.Projects[1]
	idp := ExampleIdentityProvider.ID
	const subject = "system:serviceaccount:monitoring:kms-exporter"
	tok := srv.IDToken(idp, subject, time.Hour)
	if parts := strings.Split(tok, "."); len(parts) != 3 {
		t.Fatalf("ID token %q is not a JWT", tok)
	}

	for _, scope := range []string{`,"scope":{"project":{"id":"` + p.ID + `"}}`, `,"scope":{"project":{"name":"` + p.IAMName() + `"}}`} {
		a := exchange(t, srv, idp, tok, scope)
		if a.status != http.StatusCreated || a.header.Get("X-Subject-Token") == "" {
			t.Fatalf("exchange %s: %d %s", scope, a.status, a.body)
		}
		var b struct {
			Token struct {
				Methods []string `json:"methods"`
				Project struct{ ID string }
				User    struct{ Name string }
			} `json:"token"`
		}
		if err := json.Unmarshal(a.body, &b); err != nil || b.Token.Project.ID != p.ID || b.Token.User.Name != subject || b.Token.Methods[0] != "mapped" {
			t.Fatalf("answer %s (%v)", a.body, err)
		}
		// The token is good for KMS calls of that project, and only that one.
		if got := call(t, srv, "GET", quotasPath(p), nil, withToken(a.header.Get("X-Subject-Token"))); got.status != 200 {
			t.Fatalf("KMS with the token: %d %s", got.status, got.body)
		}
		wantError(t, call(t, srv, "GET", quotasPath(sc.Projects[0]), nil, withToken(a.header.Get("X-Subject-Token"))), 403, "KMS.0321")
	}
	// No scope: an unscoped token, for IAM calls.
	if a := exchange(t, srv, idp, tok, ""); a.status != http.StatusCreated || !strings.Contains(string(a.body), `"domain"`) {
		t.Fatalf("unscoped: %d %s", a.status, a.body)
	}

	scope := `,"scope":{"project":{"id":"` + p.ID + `"}}`
	for name, tc := range map[string]struct {
		idp, token string
		status     int
	}{
		"no X-Idp-Id":          {"", tok, 400},
		"unknown provider":     {"other-idp", tok, 404},
		"no token":             {idp, "", 400},
		"not a JWT":            {idp, "not-a-token", 401},
		"forged signature":     {idp, tok[:strings.LastIndex(tok, ".")+1] + "AAAA", 401},
		"other client":         {idp, srv.IDToken("other-idp", subject, time.Hour), 401},
		"expired":              {idp, srv.IDToken(idp, subject, -time.Second), 401},
		"another fake's token": {idp, newServer(sc).IDToken(idp, subject, time.Hour), 401},
	} {
		if a := exchange(t, srv, tc.idp, tc.token, scope); a.status != tc.status || a.header.Get("X-Subject-Token") != "" {
			t.Errorf("%s: %d %s, want %d", name, a.status, a.body, tc.status)
		}
	}
	// Expiry is judged on the fake's clock.
	srv.SetClock(func() time.Time { return testNow.Add(2 * time.Hour) })
	if a := exchange(t, srv, idp, tok, scope); a.status != 401 {
		t.Errorf("an hour after expiry: %d %s", a.status, a.body)
	}
}
