package kmsfake

import (
	"encoding/json"
	"testing"

	"github.com/kms-exporter/kms_exporter/kmsapi"
)

// A Status fault may carry any message, hostile ones included, in either
// error shape.
func TestFaultErrorMessage(t *testing.T) {
	srv, sc := fixture(t, 1)
	p := sc.Projects[0]
	ak := signWith(sc.AccessKeys[0], testNow)
	const msg = `<script>alert(1)</script>`
	for _, f := range []Fault{{Status: 500, ErrorMessage: msg}, {Status: 401, ErrorMessage: msg}} {
		srv.SetFault(kmsapi.EndpointQuotas, f)
		a := call(t, srv, "GET", quotasPath(p), nil, ak)
		var v struct {
			Msg   string `json:"error_msg"`
			Inner struct {
				Msg string `json:"error_msg"`
			} `json:"error"`
		}
		if err := json.Unmarshal(a.body, &v); err != nil {
			t.Fatal(err)
		}
		if a.status != f.Status || (v.Msg != msg && v.Inner.Msg != msg) {
			t.Errorf("fault %+v: %d %s", f, a.status, a.body)
		}
	}
}
