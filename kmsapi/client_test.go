package kmsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/kms-exporter/kms_exporter/internal/apitrace"
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
	synctest.Test(t, func(t *testing.T) {
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
	})
}

func TestInstanceCount(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}

// pagingServer serves total keys in pages, counting calls.
func pagingServer(t *testing.T, total int, mutate func(offset int, limit int) (n, reportTotal int)) (*testServer, *atomic.Int64, *sync.Map) {
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
			synctest.Test(t, func(t *testing.T) {
				srv, calls, _ := pagingServer(t, total, nil)
				c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
				keys, err := c.ListKeys(ctxTimeout(t, 20*time.Second))
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
		})
	}
}

func TestListKeysFetchesRestConcurrently(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// After the first page, the remaining pages must be in flight together.
		const total = 5000
		var inFlight atomic.Int64
		release := make(chan struct{})
		srv, _, _ := pagingServer(t, total, func(offset, limit int) (int, int) {
			if offset > 0 {
				inFlight.Add(1)
				<-release
			}
			return min(limit, total-offset), total
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		done := make(chan error)
		go func() { _, err := c.ListKeys(context.Background()); done <- err }()
		synctest.Wait()
		if n := inFlight.Load(); n != 4 {
			t.Errorf("%d page requests in flight together, want 4", n)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// regionsServer serves regions in pages of at most pageCap (0: as many as
// asked), counting calls.
func regionsServer(t *testing.T, all []string, pageCap int) (*testServer, *atomic.Int64) {
	var calls atomic.Int64
	srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
		calls.Add(1)
		if r.URL.Path != "/v2/"+testProject+"/kms/regions" {
			t.Errorf("path %s", r.URL.Path)
		}
		var limit, offset int
		fmt.Sscan(r.URL.Query().Get("limit"), &limit)
		fmt.Sscan(r.URL.Query().Get("offset"), &offset)
		if pageCap > 0 {
			limit = min(limit, pageCap)
		}
		end := min(offset+limit, len(all))
		json.NewEncoder(w).Encode(map[string][]string{"regions": all[min(offset, end):end]})
	})
	return srv, &calls
}

func TestRegionsPaging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		all := make([]string, 250)
		for i := range all {
			all[i] = fmt.Sprintf("region-%d", i)
		}
		for _, tc := range []struct {
			regions, pageCap int
			calls            int64
		}{
			{250, 0, 4},   // 100, 100, 50 and the empty page that ends the list
			{250, 10, 26}, // a server that caps pages at 10 while 100 are asked
			{25, 10, 4},
			{0, 0, 1},
		} {
			srv, calls := regionsServer(t, all[:tc.regions], tc.pageCap)
			got, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Regions(ctxTimeout(t, 5*time.Second))
			if err != nil || got == nil || fmt.Sprint(got) != fmt.Sprint(all[:tc.regions]) || calls.Load() != tc.calls {
				t.Errorf("%d regions in pages of %d: got %d regions in %d calls (want %d), %v", tc.regions, tc.pageCap, len(got), calls.Load(), tc.calls, err)
			}
		}

		// A server that ignores offset would page forever.
		var calls atomic.Int64
		srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			calls.Add(1)
			json.NewEncoder(w).Encode(map[string][]string{"regions": all[:10]})
		})
		_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Regions(ctxTimeout(t, 10*time.Second))
		if e := mustError(t, err); !strings.Contains(e.Error(), "more than 50 pages") || calls.Load() != int64(maxRegionPages) {
			t.Errorf("%d calls, %v", calls.Load(), err)
		}
	})
}

func TestParseErrorShapes(t *testing.T) {
	h := http.Header{}
	for _, tc := range []struct {
		status           int
		header, body     string
		code, msg, reqID string
	}{
		{status: 429, header: "hdr-id", body: `{"error_code":"APIGW.0308","error_msg":"The throttling threshold has been reached","request_id":"body-id"}`,
			code: "APIGW.0308", msg: "The throttling threshold has been reached", reqID: "hdr-id"},
		{status: 401, body: `{"error_code":"APIGW.0301","error_msg":"Incorrect IAM authentication information","request_id":"body-id"}`,
			code: "APIGW.0301", msg: "Incorrect IAM authentication information", reqID: "body-id"},
		{status: 403, body: `{"error":{"error_code":"KMS.0306","error_msg":"no permission"}}`, code: "KMS.0306", msg: "no permission"},
		{status: 404, body: `{"error":{"error_code":"KMS.0201","error_msg":"bad url"},"request_id":"outer"}`, code: "KMS.0201", msg: "bad url", reqID: "outer"},
		{status: 400, body: `{"error":{"error_code":"KMS.0308","error_msg":"bad","request_id":"inner"}}`, code: "KMS.0308", msg: "bad", reqID: "inner"},
		{status: 401, body: `{"error":{"code":401,"message":"The request you have made requires authentication.","title":"Unauthorized"}}`,
			code: "401", msg: "The request you have made requires authentication."},
		{status: 502, body: `<html><body>Bad Gateway</body></html>`},
		{status: 500, body: ``},
		{status: 400, body: `{"error":"plain text"}`, msg: "plain text"},
		{status: 400, body: `{"error_msg":"line\none","error_code":7}`, code: "7", msg: "line one"},
	} {
		h.Set("X-Request-Id", tc.header)
		e := parseError("x", tc.status, h, []byte(tc.body))
		if e.StatusCode != tc.status || e.Code != tc.code || e.Message != tc.msg || e.RequestID != tc.reqID {
			t.Errorf("%s: got %#v", tc.body, e)
		}
		if !strings.Contains(e.Error(), fmt.Sprint(tc.status)) {
			t.Errorf("%q lacks the status", e.Error())
		}
	}
}

// faultServer answers with the statuses in seq (then 200 quotas), counting calls.
func faultServer(t *testing.T, seq ...int) (*testServer, *atomic.Int64) {
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
	synctest.Test(t, func(t *testing.T) {
		for _, tc := range []struct {
			seq     []int
			calls   int64
			ok      bool
			checkFn func(error) bool
		}{
			{seq: []int{429, 429}, calls: 3, ok: true},
			{seq: []int{429, 429, 429, 429}, calls: 3, checkFn: statusIs(429)},
			{seq: []int{500, 502, 504}, calls: 3, checkFn: isServerError},
			{seq: []int{503}, calls: 2, ok: true},
			{seq: []int{502, 200}, calls: 2, ok: true},
			{seq: []int{401, 200}, calls: 1, checkFn: isAuthFailure},
			{seq: []int{403, 200}, calls: 1, checkFn: statusIs(403)},
			{seq: []int{404, 200}, calls: 1, checkFn: statusIs(404)},
			{seq: []int{400, 200}, calls: 1, checkFn: func(err error) bool { e, _ := errors.AsType[*Error](err); return e.StatusCode == 400 }},
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
			if e, ok := errors.AsType[*Error](err); ok && e.RequestID == "" {
				t.Errorf("%v: no request id in %v", tc.seq, err)
			}
			if codes[0] != fmt.Sprint(tc.seq[0]) {
				t.Errorf("%v: observed codes %v", tc.seq, codes)
			}
		}
	})
}

func TestNoRetryWithoutDeadlineRoom(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		old := minAttemptTime
		minAttemptTime = time.Hour
		defer func() { minAttemptTime = old }()
		srv, calls := faultServer(t, 503, 503, 503, 503, 503, 503)
		_, err := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, "")).Quotas(ctxTimeout(t, 10*time.Second))
		if !isServerError(err) || calls.Load() != 1 {
			t.Errorf("got %v after %d calls", err, calls.Load())
		}
		// Without a deadline there is always room.
		calls.Store(0)
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		if _, err := c.Quotas(context.Background()); !isServerError(err) || calls.Load() != 3 {
			t.Errorf("got %v after %d calls", err, calls.Load())
		}
	})
}

func TestBadBodies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
			"truncated": {func(w http.ResponseWriter) { io.WriteString(w, quotasExample[:40]) }, "unexpected EOF", 1},
			"huge":      {func(w http.ResponseWriter) { io.WriteString(w, big) }, "response body exceeds 4096 bytes", 1},
			"huge chunked": {func(w http.ResponseWriter) {
				for i := 0; i < len(big); i += 1000 {
					io.WriteString(w, big[i:min(i+1000, len(big))])
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
	})
}

func TestHangingServerHonoursDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, _ := newKMS(t, func(w http.ResponseWriter, r *http.Request, _ []byte) {
			<-r.Context().Done()
		})
		c := newTestClient(t, srv.URL, NewAKSK(testAK, testSK, ""))
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := c.Quotas(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 300*time.Millisecond {
			t.Errorf("got %v after %v, want the deadline after 300ms", err, time.Since(start))
		}
		mustError(t, err)

		// Cancellation works the same way, for every call.
		ctx, cancel = context.WithCancel(context.Background())
		done := make(chan error)
		go func() { _, err := c.ListKeys(ctx); done <- err }()
		synctest.Wait() // the first page is at the server
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("got %v", err)
		}
	})
}

func TestConnectionRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var attempts atomic.Int64
		c := newTestClient(t, "http://nothing-listens.test", NewAKSK(testAK, testSK, ""), func(o *CredentialOptions) {
			o.Observer = func(ri RequestInfo) {
				if ri.Code == "error" {
					attempts.Add(1)
				}
			}
		})
		_, err := c.InstanceCount(ctxTimeout(t, 10*time.Second))
		e := mustError(t, err)
		if e.StatusCode != 0 || !errors.Is(err, syscall.ECONNREFUSED) || e.Endpoint != EndpointInstances {
			t.Errorf("got %#v", e)
		}
		if attempts.Load() != 3 {
			t.Errorf("%d attempts, want 3 (connection errors are retried twice)", attempts.Load())
		}
	})
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
}

func TestLookupProjectAKSK(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
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
	})
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
	_, err := c.Quotas(context.Background())
	if e := mustError(t, err); e.StatusCode != 0 || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("got %v", err)
	}
}

// User info in an endpoint stays out of errors and traces, the user name
// too: net/http's errors hide only the password.
func TestUserinfoStaysOutOfErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, endpoint := range []string{"http://someone:hunter2@nothing-listens.test", "http://someone:hunter2@nothing listens.test"} {
			tr := apitrace.New()
			_, err := newTestClient(t, endpoint, NewAKSK(testAK, testSK, "")).InstanceCount(apitrace.With(ctxTimeout(t, 10*time.Second), tr))
			var b strings.Builder
			tr.WriteTo(&b)
			if e := mustError(t, err); !strings.Contains(e.Error(), "listens.test") || !strings.Contains(b.String(), "listens.test") {
				t.Fatalf("%s: error %q or trace %q does not name the endpoint", endpoint, e, b.String())
			}
			for _, s := range []string{"someone", "hunter2"} {
				if strings.Contains(err.Error(), s) || strings.Contains(b.String(), s) {
					t.Errorf("%s: error %q or trace %q holds %q", endpoint, err, b.String(), s)
				}
			}
		}
	})
}
