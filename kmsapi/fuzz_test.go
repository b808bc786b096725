package kmsapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// Fuzz targets for everything that reads a server's answer. Seeds are the
// API pages' examples plus testdata/fuzz/<target>/; `go test` runs them as
// ordinary tests. Every decoder must return a value or an *Error naming its
// endpoint, never panic.

func checkDecodeErr(t *testing.T, endpoint string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Endpoint != endpoint || e.Err == nil {
		t.Fatalf("want *Error for %s with a cause, got %#v", endpoint, err)
	}
	_ = e.Error()
}

func FuzzDecodeQuotas(f *testing.F) {
	f.Add([]byte(quotasExample))
	f.Add([]byte(`{"quotas":{"resources":[{"quota":"20","used":"1","type":"CMK"}]}}`))
	f.Add([]byte(`{"quotas":{"resources":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeQuotas(bytes.NewReader(b))
		checkDecodeErr(t, EndpointQuotas, err)
		if err == nil && q == nil {
			t.Fatal("nil quotas without error")
		}
	})
}

func FuzzDecodeInstances(f *testing.F) {
	f.Add([]byte(`{"instance_num" : 15}`))
	f.Add([]byte(`{"instance_num":"15"}`))
	f.Add([]byte(`{"instance_num":1.5e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := decodeInstances(bytes.NewReader(b))
		checkDecodeErr(t, EndpointInstances, err)
		if err == nil && n < 0 {
			t.Fatalf("negative count %d", n)
		}
	})
}

// FuzzDecodeKeyPage decodes each input whole and a byte at a time: both
// give the same page, or both a named decode error.
func FuzzDecodeKeyPage(f *testing.F) {
	f.Add([]byte(keyPageDocExample))
	f.Add([]byte(keyPageSDKShape))
	f.Add([]byte(keyPageFullShape))
	f.Add([]byte(`{"RESOURCES":[{"resource_id":"a","tags":[null,{"key":"k","value":"v\u00e9"}]}],"total_count":1.0}`))
	f.Add([]byte(`{"resources":[{"resource_id":"a\ud800","resource_detail":{"key_state":" 2 "}}],"total_count":"1","x":[[{}],-0.5e3,true]}`))
	f.Add(keyPageJSON(0, 3, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodeKeyPage(bytes.NewReader(b), int64(len(b)), nil)
		checkDecodeErr(t, EndpointResourceInstances, err)
		streamed, serr := decodeKeyPage(iotest.OneByteReader(bytes.NewReader(b)), -1, nil)
		if (err == nil) != (serr == nil) || err == nil && !reflect.DeepEqual(p, streamed) {
			t.Fatalf("whole: %v, %v\nstreamed: %v, %v", p, err, streamed, serr)
		}
		if err != nil {
			return
		}
		if p.Total < 0 || p.Keys == nil {
			t.Fatalf("total %d, keys %v", p.Total, p.Keys)
		}
		for _, k := range p.Keys {
			if k.ID == "" {
				t.Fatal("key without ID")
			}
			_ = k.State.String()
		}
	})
}

func FuzzDecodeRegions(f *testing.F) {
	f.Add([]byte(`{"regions" : [ "cn-north-2", "cn-north-4", "cn-north-1" ]}`))
	f.Add([]byte(`{"regions":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := decodeRegions(bytes.NewReader(b))
		checkDecodeErr(t, EndpointRegions, err)
	})
}

func FuzzDecodeProjects(f *testing.F) {
	f.Add([]byte(`{"projects":[{"id":"p-1","name":"cn-north-4","domain_id":"d","enabled":true}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := projectNamed(bytes.NewReader(b), "cn-north-4")
		checkDecodeErr(t, EndpointIAMProjects, err)
		if err == nil && id == "" {
			t.Fatal("empty project ID without error")
		}
	})
}

func FuzzDecodeTokenBody(f *testing.F) {
	f.Add([]byte(`{"token":{"expires_at":"2026-11-23T11:15:04.000000Z","methods":["password"],"project":{"id":"p","name":"cn-north-4"},"user":{"name":"u"}}}`))
	f.Add([]byte(`{"token":{"expires_at":"2026-11-23T11:15:04Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		exp, _, err := decodeTokenBody(bytes.NewReader(b))
		checkDecodeErr(t, EndpointIAMToken, err)
		if err == nil && exp.IsZero() {
			t.Fatal("zero expiry without error")
		}
	})
}

func FuzzDecodeSecurityKey(f *testing.F) {
	f.Add([]byte(`{"credential":{"access":"AK","secret":"SK","securitytoken":"TOKEN","expires_at":"2026-11-23T11:15:04.000000Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := decodeSecurityKey(bytes.NewReader(b))
		checkDecodeErr(t, EndpointECSMetadata, err)
		if err != nil {
			if k.SK != "" {
				t.Fatal("secret returned with an error")
			}
			return
		}
		if k.AK == "" || k.SK == "" || k.Expires.IsZero() {
			t.Fatalf("incomplete key without error")
		}
	})
}

func FuzzParseError(f *testing.F) {
	f.Add(401, []byte(`{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information","request_id":"r"}`))
	f.Add(400, []byte(`{"error":{"error_code":"KMS.XXXX","error_msg":"XXX"}}`))
	f.Add(401, []byte(`{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`))
	f.Add(502, []byte(`<html>Bad Gateway</html>`))
	f.Add(429, []byte(`{"error":"x","error_code":7}`))
	f.Fuzz(func(t *testing.T, status int, b []byte) {
		h := http.Header{"X-Request-Id": {"hdr"}}
		e := parseError(EndpointQuotas, status, h, b)
		if e == nil || e.StatusCode != status || e.Endpoint != EndpointQuotas || e.RequestID != "hdr" {
			t.Fatalf("got %#v", e)
		}
		s := e.Error()
		if strings.ContainsAny(e.Code+e.Message, "\n\r") || len(e.Message) > 512 || len(e.Code) > 512 {
			t.Fatalf("unclean error %q", s)
		}
	})
}

// BenchmarkDecodeKeyPage1000 decodes a synthetic 1000-key page as it would
// come from a response: in reads of at most 16 KiB (a TLS record).
func BenchmarkDecodeKeyPage1000(b *testing.B) {
	page := keyPageJSON(0, 1000, 5000)
	b.SetBytes(int64(len(page)))
	b.ReportAllocs()
	r := bytes.NewReader(page)
	for b.Loop() {
		r.Reset(page)
		p, err := decodeKeyPage(&maxReader{r, 16 << 10}, int64(len(page)), nil)
		if err != nil || len(p.Keys) != 1000 {
			b.Fatal(err)
		}
	}
}

// maxReader returns at most n bytes a read.
type maxReader struct {
	r io.Reader
	n int
}

func (m *maxReader) Read(p []byte) (int, error) { return m.r.Read(p[:min(len(p), m.n)]) }
