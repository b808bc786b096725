package kmsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const quotasExample = `{
"quotas" : {
"resources" : [ {
"quota" : 20,
"used" : 20,
"type" : "CMK"
}, {
"quota" : 100,
"used" : 0,
"type" : "grant_per_CMK"
}, {
"quota" : "7",
"used" : "3",
"type" : "some_new_quota"
} ]
}
}`

func TestQuotasRequestAndDecode(t *testing.T) {
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.Method != http.MethodGet || r.URL.Path != "/v1.0/"+testProject+"/kms/user-quotas" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type %q", got)
		}
		if got := r.Header.Get("X-Project-Id"); got != testProject {
			t.Errorf("X-Project-Id %q", got)
		}
		if got := r.Header.Get("User-Agent"); !strings.HasPrefix(got, "kms_exporter/") {
			t.Errorf("User-Agent %q", got)
		}
		io.WriteString(w, quotasExample)
	})
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	q, err := c.Quotas(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []Quota{{"CMK", 20, 20}, {"grant_per_CMK", 0, 100}, {"some_new_quota", 3, 7}}
	if fmt.Sprint(q) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", q, want)
	}
}

func TestInstanceCount(t *testing.T) {
	for _, body := range []string{`{"instance_num" : 15}`, `{"instance_num":"15","extra":[1,2]}`} {
		srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			if r.URL.Path != "/v1.0/"+testProject+"/kms/user-instances" {
				t.Errorf("path %s", r.URL.Path)
			}
			io.WriteString(w, body)
		})
		n, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).InstanceCount(ctxTimeout(t, 5*time.Second))
		if err != nil || n != 15 {
			t.Fatalf("%s: got %d, %v", body, n, err)
		}
	}
}

// The documentation's example, with the missing comma before total_count
// put back: numbers where the SDK has strings, total_count a string.
const keyPageDocExample = `{
 "resources": [{
       "resource_id": "90c03e67-5534-4ed0-acfa-89780e47a535",
       "resource_detail": {
              "key_id": "90c03e67-5534-4ed0-acfa-89780e47a535",
              "domain_id": "4B688Fb77412Aee5570E7ecdbeB5afdc",
              "key_alias": "tagTest_xmdmi",
              "key_description": "123",
              "creation_date": 1521449277000,
              "scheduled_deletion_date": "",
              "key_state": 2,
              "default_key_flag": 0,
              "key_type": 1
       },
       "resource_name": "tagTest_xmdmi",
       "tags": [{"key": "$", "value": "testValue!"}, {"key": "1", "value": "ccwZ"}]
 }],
 "total_count": "1"}`

// The SDK's shape: everything a string, seconds timestamps, unknown fields.
const keyPageSDKShape = `{"resources":[{"resource_id":"r1","resource_detail":{"key_id":"k1","key_alias":"obs/default",
"key_state":"4","default_key_flag":"1","key_type":"1","creation_date":"1502799822","scheduled_deletion_date":"1503799822000",
"expiration_time":null,"key_label":"x","partition_type":"1"},"resource_name":"obs/default","tags":[]},
{"resource_id":"r2","resource_detail":{"key_state":"9","creation_date":"0"},"tags":null}],"total_count":2}`

func TestDecodeKeyPageTolerant(t *testing.T) {
	p, err := decodeKeyPage([]byte(keyPageDocExample), true)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 1 || len(p.Keys) != 1 {
		t.Fatalf("got %+v", p)
	}
	k := p.Keys[0]
	if k.ID != "90c03e67-5534-4ed0-acfa-89780e47a535" || k.Alias != "tagTest_xmdmi" || k.State != StateEnabled ||
		k.Default || k.KeyType != 1 || k.Description != "123" || k.DomainID != "4B688Fb77412Aee5570E7ecdbeB5afdc" ||
		k.ResourceName != "tagTest_xmdmi" {
		t.Errorf("got %+v", k)
	}
	if !k.Created.Equal(time.UnixMilli(1521449277000)) || !k.ScheduledDeletion.IsZero() {
		t.Errorf("times: %v %v", k.Created, k.ScheduledDeletion)
	}
	if len(k.Tags) != 2 || k.Tags[1] != (Tag{"1", "ccwZ"}) {
		t.Errorf("tags %v", k.Tags)
	}

	p, err = decodeKeyPage([]byte(keyPageSDKShape), true)
	if err != nil {
		t.Fatal(err)
	}
	k = p.Keys[0]
	if k.ID != "k1" || k.State != StatePendingDeletion || !k.Default || k.KeyType != 1 || !k.Expires.IsZero() {
		t.Errorf("got %+v", k)
	}
	if !k.Created.Equal(time.Unix(1502799822, 0)) || !k.ScheduledDeletion.Equal(time.UnixMilli(1503799822000)) {
		t.Errorf("times: %v %v", k.Created, k.ScheduledDeletion)
	}
	k = p.Keys[1]
	if k.ID != "r2" || k.State.String() != "unknown" || !k.Created.IsZero() || k.Tags != nil {
		t.Errorf("got %+v", k)
	}
}

func TestDecodeRejectsUnexpected(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func([]byte) error
		body string
	}{
		{"quotas missing", func(b []byte) error { _, err := decodeQuotas(b); return err }, `{"other":1}`},
		{"quotas wrong type", func(b []byte) error { _, err := decodeQuotas(b); return err }, `{"quotas":[]}`},
		{"instances missing", func(b []byte) error { _, err := decodeInstances(b); return err }, `{}`},
		{"instances text", func(b []byte) error { _, err := decodeInstances(b); return err }, `{"instance_num":"many"}`},
		{"page no total", func(b []byte) error { _, err := decodeKeyPage(b, true); return err }, `{"resources":[]}`},
		{"page no resources", func(b []byte) error { _, err := decodeKeyPage(b, true); return err }, `{"total_count":3}`},
		{"page negative", func(b []byte) error { _, err := decodeKeyPage(b, true); return err }, `{"resources":[],"total_count":-1}`},
		{"page bad state", func(b []byte) error { _, err := decodeKeyPage(b, true); return err }, `{"resources":[{"resource_id":"a","resource_detail":{"key_state":"x"}}],"total_count":1}`},
		{"page no id", func(b []byte) error { _, err := decodeKeyPage(b, true); return err }, `{"resources":[{}],"total_count":1}`},
		{"regions missing", func(b []byte) error { _, err := decodeRegions(b); return err }, `null`},
		{"html", func(b []byte) error { _, err := decodeRegions(b); return err }, `<html>oops</html>`},
	} {
		err := tc.fn([]byte(tc.body))
		e := mustError(t, err)
		if e.StatusCode != http.StatusOK || e.Err == nil || e.Endpoint == "" {
			t.Errorf("%s: got %#v", tc.name, e)
		}
	}
	// count may carry null resources.
	if p, err := decodeKeyPage([]byte(`{"resources":null,"total_count":"42"}`), false); err != nil || p.Total != 42 {
		t.Errorf("count: %v %v", p, err)
	}
}

func TestFilterAndCountBodies(t *testing.T) {
	var bodies []map[string]any
	var mu sync.Mutex
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1.0/"+testProject+"/kms/resource_instances/action" {
			t.Errorf("got %s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Content-Type"); got != "application/json;charset=UTF-8" {
			t.Errorf("Content-Type %q", got)
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Error(err)
		}
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		if m["action"] == "count" {
			io.WriteString(w, `{"resources":null,"total_count":7}`)
			return
		}
		io.WriteString(w, keyPageDocExample)
	})
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	q := KeyQuery{Tags: []TagFilter{{Key: "env", Values: []string{"a", "b"}}}, Matches: []Match{{Key: "resource_name", Value: "x"}}}
	p, err := c.FilterKeys(ctxTimeout(t, 5*time.Second), q, 100, 200)
	if err != nil || p.Total != 1 {
		t.Fatal(p, err)
	}
	n, err := c.CountKeys(ctxTimeout(t, 5*time.Second), q)
	if err != nil || n != 7 {
		t.Fatal(n, err)
	}
	f, cnt := bodies[0], bodies[1]
	if f["action"] != "filter" || f["limit"] != "100" || f["offset"] != "200" {
		t.Errorf("filter body %v", f)
	}
	if fmt.Sprint(f["tags"]) != "[map[key:env values:[a b]]]" || fmt.Sprint(f["matches"]) != "[map[key:resource_name value:x]]" {
		t.Errorf("filter tags/matches %v %v", f["tags"], f["matches"])
	}
	if _, ok := cnt["limit"]; ok {
		t.Errorf("count sent limit: %v", cnt)
	}
	if _, ok := cnt["offset"]; ok {
		t.Errorf("count sent offset: %v", cnt)
	}
	if _, err := c.FilterKeys(context.Background(), KeyQuery{}, 1001, 0); err == nil {
		t.Error("limit 1001 accepted")
	}
}

// keyPageJSON renders keys [offset, offset+n) of a listing of total keys.
func keyPageJSON(offset, n, total int) []byte {
	var b strings.Builder
	b.WriteString(`{"resources":[`)
	for i := offset; i < offset+n; i++ {
		if i > offset {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"resource_id":"key-%06d","resource_detail":{"key_id":"key-%06d","key_alias":"alias-%d","domain_id":"d","key_description":"","creation_date":"1502799822000","scheduled_deletion_date":"","key_state":"2","default_key_flag":"0","key_type":"1"},"resource_name":"alias-%d","tags":[{"key":"env","value":"prod"}]}`, i, i, i, i)
	}
	fmt.Fprintf(&b, `],"total_count":%d}`, total)
	return []byte(b.String())
}

// pagingServer serves total keys in pages, counting calls.
func pagingServer(t *testing.T, total int, mutate func(offset int, limit int) (n, reportTotal int)) (*httptest.Server, *atomic.Int64, *sync.Map) {
	var calls atomic.Int64
	offsets := &sync.Map{}
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		calls.Add(1)
		var q struct{ Action, Limit, Offset string }
		json.Unmarshal(body, &q)
		if q.Action != "filter" {
			t.Errorf("unexpected action %q", q.Action)
		}
		var limit, offset int
		fmt.Sscan(q.Limit, &limit)
		fmt.Sscan(q.Offset, &offset)
		if _, dup := offsets.LoadOrStore(offset, true); dup {
			t.Errorf("offset %d asked twice", offset)
		}
		n := max(0, min(limit, total-offset))
		rt := total
		if mutate != nil {
			n, rt = mutate(offset, limit)
		}
		w.Write(keyPageJSON(offset, n, rt))
	})
	return srv, &calls, offsets
}

func TestListKeysPaging(t *testing.T) {
	for _, total := range []int{0, 1, 999, 1000, 1001, 10000} {
		t.Run(fmt.Sprint(total), func(t *testing.T) {
			srv, calls, _ := pagingServer(t, total, nil)
			c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
			keys, err := c.ListKeys(ctxTimeout(t, 20*time.Second), KeyQuery{})
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != total {
				t.Fatalf("got %d keys, want %d", len(keys), total)
			}
			for i, k := range keys {
				if want := fmt.Sprintf("key-%06d", i); k.ID != want {
					t.Fatalf("key %d is %s, want %s", i, k.ID, want)
				}
			}
			wantCalls := max(1, (total+999)/1000)
			if got := calls.Load(); got != int64(wantCalls) {
				t.Errorf("%d requests, want %d", got, wantCalls)
			}
		})
	}
}

func TestListKeysFetchesRestConcurrently(t *testing.T) {
	// After the first page, the remaining pages must be in flight together.
	const total = 5000
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	srv, _, _ := pagingServer(t, total, func(offset, limit int) (int, int) {
		if offset > 0 {
			n := inFlight.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n == 4 {
				once.Do(func() { close(release) })
			}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
			inFlight.Add(-1)
		}
		return min(limit, total-offset), total
	})
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	if _, err := c.ListKeys(ctxTimeout(t, 30*time.Second), KeyQuery{}); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 4 {
		t.Errorf("peak of %d concurrent page requests, want 4", peak.Load())
	}
}

func TestListKeysInconsistentPages(t *testing.T) {
	for name, mutate := range map[string]func(offset, limit int) (int, int){
		"total grows": func(offset, limit int) (int, int) {
			if offset == 1000 {
				return 1000, 2501
			}
			return min(limit, 2500-offset), 2500
		},
		"short page": func(offset, limit int) (int, int) {
			if offset == 1000 {
				return 999, 2500
			}
			return min(limit, 2500-offset), 2500
		},
		"empty first page": func(offset, limit int) (int, int) { return 0, 2500 },
	} {
		t.Run(name, func(t *testing.T) {
			srv, _, _ := pagingServer(t, 2500, mutate)
			c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
			keys, err := c.ListKeys(ctxTimeout(t, 10*time.Second), KeyQuery{})
			e := mustError(t, err)
			if keys != nil || e.Endpoint != EndpointResourceInstances || e.StatusCode != 200 {
				t.Errorf("got %d keys, %v", len(keys), err)
			}
		})
	}
	// A page repeating a key of another page is a duplicate, not silently kept.
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, body []byte) {
		var q struct{ Offset string }
		json.Unmarshal(body, &q)
		page := keyPageJSON(0, 1000, 1001)
		if q.Offset == "1000" {
			page = keyPageJSON(999, 1, 1001)
		}
		w.Write(page)
	})
	_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).ListKeys(ctxTimeout(t, 10*time.Second), KeyQuery{})
	if e := mustError(t, err); !strings.Contains(e.Error(), "twice") {
		t.Errorf("got %v", err)
	}
}

func TestRegionsPaging(t *testing.T) {
	all := make([]string, 250)
	for i := range all {
		all[i] = fmt.Sprintf("region-%d", i)
	}
	var calls atomic.Int64
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		calls.Add(1)
		if r.URL.Path != "/v2/"+testProject+"/kms/regions" {
			t.Errorf("path %s", r.URL.Path)
		}
		var limit, offset int
		fmt.Sscan(r.URL.Query().Get("limit"), &limit)
		fmt.Sscan(r.URL.Query().Get("offset"), &offset)
		end := min(offset+limit, len(all))
		json.NewEncoder(w).Encode(map[string][]string{"regions": all[min(offset, end):end]})
	})
	got, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Regions(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(all) || calls.Load() != 3 {
		t.Errorf("got %d regions in %d calls", len(got), calls.Load())
	}

	// A server that ignores offset would page forever.
	calls.Store(0)
	srv2, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		calls.Add(1)
		json.NewEncoder(w).Encode(map[string][]string{"regions": all[:100]})
	})
	_, err = newTestClient(t, srv2.URL, NewAKSK(testAK, testSK, "")).Regions(ctxTimeout(t, 10*time.Second))
	mustError(t, err)
	if calls.Load() != int64(maxRegionPages) {
		t.Errorf("%d calls", calls.Load())
	}
}

func TestParseErrorShapes(t *testing.T) {
	h := http.Header{}
	for _, tc := range []struct {
		status            int
		header, body      string
		code, msg, reqID  string
		throttled, auth   bool
		forbidden, server bool
		notFound          bool
	}{
		{status: 429, header: "hdr-id", body: `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached","request_id":"body-id"}`,
			code: "APIGW.0308", msg: "The throttling threshold has been reached", reqID: "hdr-id", throttled: true},
		{status: 401, body: `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information","request_id":"body-id"}`,
			code: "APIGW.0301", msg: "Incorrect IAM authentication information", reqID: "body-id", auth: true},
		{status: 403, body: `{"error":{"error_code":"KMS.0306","error_msg":"no permission"}}`, code: "KMS.0306", msg: "no permission", forbidden: true},
		{status: 404, body: `{"error":{"error_code":"KMS.0201","error_msg":"bad url"}}`, code: "KMS.0201", msg: "bad url", notFound: true},
		{status: 401, body: `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`,
			code: "401", msg: "The request you have made requires authentication.", auth: true},
		{status: 502, body: `<html><body>Bad Gateway</body></html>`, server: true},
		{status: 500, body: ``, server: true},
		{status: 400, body: `{"error":"plain text"}`, msg: "plain text"},
	} {
		h.Set("X-Request-Id", tc.header)
		e := parseError("x", tc.status, h, []byte(tc.body))
		if e.StatusCode != tc.status || e.Code != tc.code || e.Message != tc.msg || e.RequestID != tc.reqID {
			t.Errorf("%s: got %#v", tc.body, e)
		}
		var err error = e
		if IsThrottled(err) != tc.throttled || IsAuthFailure(err) != tc.auth || IsForbidden(err) != tc.forbidden ||
			IsServerError(err) != tc.server || IsNotFound(err) != tc.notFound {
			t.Errorf("%s: helpers disagree", tc.body)
		}
		if !strings.Contains(e.Error(), fmt.Sprint(tc.status)) {
			t.Errorf("%q lacks the status", e.Error())
		}
	}
}

// faultServer answers with the statuses in seq (then 200 quotas), counting calls.
func faultServer(t *testing.T, seq ...int) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		n := int(calls.Add(1))
		if n <= len(seq) && seq[n-1] != 200 {
			w.Header().Set("X-Request-Id", fmt.Sprint("req-", n))
			w.WriteHeader(seq[n-1])
			fmt.Fprintf(w, `{"error":{"error_code":"KMS.%04d","error_msg":"fault"}}`, seq[n-1])
			return
		}
		io.WriteString(w, quotasExample)
	})
	return srv, &calls
}

func TestRetries(t *testing.T) {
	for _, tc := range []struct {
		seq     []int
		calls   int64
		ok      bool
		checkFn func(error) bool
	}{
		{seq: []int{429, 429}, calls: 3, ok: true},
		{seq: []int{429, 429, 429, 429}, calls: 3, checkFn: IsThrottled},
		{seq: []int{500, 502, 504}, calls: 3, checkFn: IsServerError},
		{seq: []int{503}, calls: 2, ok: true},
		{seq: []int{502, 200}, calls: 2, ok: true},
		{seq: []int{401, 200}, calls: 1, checkFn: IsAuthFailure},
		{seq: []int{403, 200}, calls: 1, checkFn: IsForbidden},
		{seq: []int{404, 200}, calls: 1, checkFn: IsNotFound},
		{seq: []int{400, 200}, calls: 1, checkFn: func(err error) bool { e, _ := asError(err); return e.StatusCode == 400 }},
	} {
		srv, calls := faultServer(t, tc.seq...)
		var codes []string
		var mu sync.Mutex
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) {
			o.Observer = func(ri RequestInfo) {
				mu.Lock()
				codes = append(codes, ri.Code)
				mu.Unlock()
				if ri.Endpoint != EndpointQuotas || ri.Region != testRegion {
					t.Errorf("observed %+v", ri)
				}
			}
		})
		_, err := c.Quotas(ctxTimeout(t, 10*time.Second))
		if (err == nil) != tc.ok || (tc.checkFn != nil && !tc.checkFn(err)) {
			t.Errorf("%v: got %v", tc.seq, err)
		}
		if calls.Load() != tc.calls || int64(len(codes)) != tc.calls {
			t.Errorf("%v: %d calls, %d observed, want %d", tc.seq, calls.Load(), len(codes), tc.calls)
		}
		if e, ok := asError(err); ok && e.RequestID == "" {
			t.Errorf("%v: no request id in %v", tc.seq, err)
		}
		if codes[0] != fmt.Sprint(tc.seq[0]) {
			t.Errorf("%v: observed codes %v", tc.seq, codes)
		}
	}
}

func TestNoRetryWithoutDeadlineRoom(t *testing.T) {
	old := minAttemptTime
	minAttemptTime = time.Hour
	defer func() { minAttemptTime = old }()
	srv, calls := faultServer(t, 503, 503, 503, 503, 503, 503)
	_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Quotas(ctxTimeout(t, 10*time.Second))
	if !IsServerError(err) || calls.Load() != 1 {
		t.Errorf("got %v after %d calls", err, calls.Load())
	}
	// Without a deadline there is always room.
	calls.Store(0)
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	if _, err := c.Quotas(context.Background()); !IsServerError(err) || calls.Load() != 3 {
		t.Errorf("got %v after %d calls", err, calls.Load())
	}
}

func TestBadBodies(t *testing.T) {
	old := maxBodyBytes
	maxBodyBytes = 4096
	defer func() { maxBodyBytes = old }()
	big := `{"quotas":{"resources":[]},"pad":"` + strings.Repeat("x", 5000) + `"}`
	for name, tc := range map[string]struct {
		handler func(w http.ResponseWriter)
		want    string
		calls   int64
	}{
		"malformed": {func(w http.ResponseWriter) { io.WriteString(w, `{"quotas": [oops`) }, "decoding response", 1},
		"truncated": {func(w http.ResponseWriter) { io.WriteString(w, quotasExample[:40]) }, "unexpected end of JSON input", 1},
		"huge":      {func(w http.ResponseWriter) { io.WriteString(w, big) }, "response body exceeds 4096 bytes", 1},
		"huge chunked": {func(w http.ResponseWriter) {
			for range 10 {
				io.WriteString(w, big[:1000])
				w.(http.Flusher).Flush()
			}
		}, "response body exceeds 4096 bytes", 1},
		// A connection cut inside the promised body is a transport error, retried.
		"cut": {func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "500")
			io.WriteString(w, quotasExample[:40])
		}, "unexpected EOF", 3},
	} {
		var calls atomic.Int64
		srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			calls.Add(1)
			tc.handler(w)
		})
		_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Quotas(ctxTimeout(t, 10*time.Second))
		e := mustError(t, err)
		if e.StatusCode != 200 || e.Endpoint != EndpointQuotas || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %#v: %v", name, e, err)
		}
		if calls.Load() != tc.calls {
			t.Errorf("%s: %d calls, want %d", name, calls.Load(), tc.calls)
		}
	}
}

func TestHangingServerHonoursDeadline(t *testing.T) {
	stop := make(chan struct{})
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	})
	defer close(stop)
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := c.Quotas(ctx); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("got %v", err)
		}
		mustError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("call outlived its context")
	}

	// Cancellation works the same way, for every call.
	ctx, cancel = context.WithCancel(context.Background())
	go func() { _, err := c.ListKeys(ctx, KeyQuery{}); done <- err }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("call outlived its context")
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var attempts atomic.Int64
	c := newTestClient(t, "http://"+addr, NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) {
		o.Observer = func(ri RequestInfo) {
			if ri.Code == "error" {
				attempts.Add(1)
			}
		}
	})
	_, err = c.InstanceCount(ctxTimeout(t, 10*time.Second))
	e := mustError(t, err)
	if e.StatusCode != 0 || e.Err == nil || e.Endpoint != EndpointInstances {
		t.Errorf("got %#v", e)
	}
	if attempts.Load() != 3 {
		t.Errorf("%d attempts, want 3 (connection errors are retried twice)", attempts.Load())
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	srv, _ := faultServer(t, 401)
	_, err := newTestClient(t, srv.URL, NewAKSK(testAK, "wrong-secret-value", "sec-token-value")).Quotas(ctxTimeout(t, 5*time.Second))
	if err == nil {
		t.Fatal("want error")
	}
	for _, s := range []string{"wrong-secret-value", "sec-token-value", "Signature="} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q leaks %q", err, s)
		}
	}
}

func TestLookupProjectAKSK(t *testing.T) {
	answer := `{"projects":[{"id":"p-1","name":"cn-north-4","domain_id":"d","enabled":true}]}`
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		if r.URL.Path != "/v3/projects" || r.URL.Query().Get("name") != testRegion {
			t.Errorf("got %s", r.URL)
		}
		if r.Header.Get("X-Project-Id") != "" {
			t.Error("X-Project-Id sent to IAM")
		}
		io.WriteString(w, answer)
	})
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
	cred := c.opts.Credential
	id, err := cred.LookupProject(ctxTimeout(t, 5*time.Second), testRegion)
	if err != nil || id != "p-1" {
		t.Fatalf("got %q, %v", id, err)
	}
	for _, a := range []string{`{"projects":[]}`, `{"projects":[{"id":"a","name":"cn-north-4"},{"id":"b","name":"cn-north-4"}]}`, `{}`} {
		answer = a
		if _, err := cred.LookupProject(ctxTimeout(t, 5*time.Second), testRegion); mustError(t, err).Endpoint != EndpointIAMProjects {
			t.Errorf("%s: got %v", a, err)
		}
	}
}

func TestNewHTTPClientDefaults(t *testing.T) {
	tr := NewHTTPClient().Transport.(*http.Transport)
	if tr.Proxy == nil || tr.TLSClientConfig.InsecureSkipVerify || tr.MaxIdleConnsPerHost < DefaultConcurrency || tr.TLSHandshakeTimeout == 0 {
		t.Errorf("transport %+v", tr)
	}
	// Certificates are verified: httptest's self-signed one is refused.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, quotasExample) }))
	defer srv.Close()
	c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) { o.HTTPClient = NewHTTPClient() })
	_, err := c.Quotas(ctxTimeout(t, 5*time.Second))
	if e := mustError(t, err); e.StatusCode != 0 || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("got %v", err)
	}
}
