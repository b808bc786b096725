package kmsapi_test

import (
	"testing"
	"time"

	"github.com/kms-exporter/kms_exporter/kmsapi"
	"github.com/kms-exporter/kms_exporter/kmsapi/kmsfake"
)

// Every attribute the fake's full resource_detail carries is decoded; the
// documentation's 9-field shape leaves them empty and fails nothing.
func TestFakeKeyAttributesBothShapes(t *testing.T) {
	sc := kmsfake.Generate(kmsfake.GenerateOptions{Seed: 5, KeysPerProject: 1200})
	srv := start(t, sc)
	p := sc.Projects[0]
	c := newClient(t, srv, p, kmsapi.NewAKSK(kmsfake.ExampleAccessKey.AK, kmsfake.ExampleAccessKey.SK, ""))

	keys, err := c.ListKeys(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, keys, p.Keys)
	expiring := 0
	for i, k := range keys {
		w := p.Keys[i]
		if k.KeySpec != w.KeySpec || k.KeyUsage != w.KeyUsage || k.Origin != w.Origin || k.RotationEnabled != w.RotationEnabled ||
			k.EnterpriseProjectID != w.EnterpriseProjectID || !k.Expires.Equal(w.Expires) || k.KeySpec == "" {
			t.Fatalf("key %d:\n got %+v\nwant %+v", i, k, w)
		}
		if !k.Expires.IsZero() {
			expiring++
		}
	}
	if expiring == 0 {
		t.Error("no key with expiring key material")
	}

	srv.SetDetail(kmsfake.DetailExample)
	keys, err = c.ListKeys(ctxFor(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, keys, p.Keys)
	for i, k := range keys {
		if k.KeySpec != "" || k.KeyUsage != "" || k.Origin != "" || k.RotationEnabled != "" || k.EnterpriseProjectID != "" || !k.Expires.IsZero() {
			t.Fatalf("key %d of the example shape: %+v", i, k)
		}
	}
}
