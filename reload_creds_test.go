package main

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
)

// A reload must not undo the pause after an authentication failure: with a
// wrong secret, every reload of an unchanged config would otherwise let one
// more failing request through, and five lock the AK for five minutes.
func TestReloadKeepsCredentialPause(t *testing.T) {
	synctest.Test(t, testReloadKeepsCredentialPause)
}

func testReloadKeepsCredentialPause(t *testing.T) {
	e := newTestEnv(t, 1)
	wrong := strings.Replace(e.configYAML(1), testAK.SK, "wrong-"+testAK.SK, 1)
	e.writeConfig(t, wrong)
	reload := func() {
		t.Helper()
		if code, body := e.reload(t); code != http.StatusOK {
			t.Fatalf("reload: %d %s", code, body)
		}
	}
	reload()
	e.fake.ResetRequests()
	e.get(t, "/metrics")
	if n := e.fake.Requests(""); n != 1 {
		t.Fatalf("%d requests with a wrong secret, want the single probe", n)
	}
	for range 5 {
		reload()
		e.get(t, "/metrics")
	}
	if n := e.fake.Requests(""); n != 1 {
		t.Errorf("%d requests after 5 reloads of the same wrong secret, want still 1", n)
	}

	// A changed secret is a new credential: it is tried at once.
	e.writeConfig(t, e.configYAML(1))
	reload()
	_, body := e.get(t, "/metrics")
	if v, _ := value(parse(t, body), "kms_up", nil); v != 1 {
		t.Errorf("kms_up %v after fixing the secret", v)
	}
}
